//go:build !linux

package s3test

import "syscall"

// dieWithParent is Linux-only; elsewhere a killed test binary may leave
// versitygw behind.
func dieWithParent() *syscall.SysProcAttr { return nil }
