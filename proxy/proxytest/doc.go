// Package proxytest provides scripted upstreams for tests of the proxy and
// its policy layers: a TCP server that answers each request with the next
// step of a script (respond, reset, close without answering, answer with a
// body cut short, hang), each step optionally delayed, held until a signal,
// or announcing its arrival; plus an address that refuses connections.
package proxytest
