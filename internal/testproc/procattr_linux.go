package testproc

import "syscall"

// DieWithParent has the kernel kill a test's server when the test process
// dies, even when it is killed before its cleanups run (a go test timeout).
func DieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
