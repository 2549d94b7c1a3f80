package loadgen_test

import "syscall"

// errReset is the errno a client sees when the peer resets a connection.
var errReset = syscall.ECONNRESET
