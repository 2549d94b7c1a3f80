package harness

import "syscall"

// childAttr puts a child in its own process group, so a Ctrl-C typed at
// the terminal reaches only the caller (which then stops the child by PID
// after writing its report) instead of killing the stack mid-run, and asks
// the kernel to SIGKILL the child if the caller dies without cleaning up
// (kill -9 of loadtest or of a test binary), so no child outlives it.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
