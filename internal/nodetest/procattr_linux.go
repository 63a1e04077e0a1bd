package nodetest

import "syscall"

// dieWithParent has the kernel kill the node when the test process
// dies, even when it is killed before its cleanups run (a go test timeout).
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
