package s3test

import "syscall"

// dieWithParent has the kernel kill versitygw when the test process
// dies, even when it is killed before its cleanups run (a go test timeout).
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
