// Package proxytest provides scripted upstreams for tests of the proxy and
// its policy layers: a TCP server that answers each request with the next
// step of a script (respond, refuse, reset, close without answering, hang,
// wait for a signal), plus an address that refuses connections.
package proxytest
