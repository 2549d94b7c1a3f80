// Package harness holds helpers shared by the end-to-end and integration
// tests of the repository: a free-port finder and a redis-server process
// that tests start on their own port, pause, stop, kill and restart to
// inject storage faults. It never touches the machine's Redis on port 6379.
package harness
