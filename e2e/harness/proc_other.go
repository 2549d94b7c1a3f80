//go:build !linux

package harness

import "syscall"

// childAttr puts a child in its own process group, so a Ctrl-C typed at
// the terminal reaches only the caller, which stops the child by PID.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
