//go:build !linux

package nodetest

import "syscall"

// dieWithParent is Linux-only; elsewhere a killed test binary may leave
// nodes behind.
func dieWithParent() *syscall.SysProcAttr { return nil }
