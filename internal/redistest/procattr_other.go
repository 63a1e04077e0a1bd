//go:build !linux

package redistest

import "syscall"

// dieWithParent is Linux-only; elsewhere a killed test binary may leave
// redis-server behind.
func dieWithParent() *syscall.SysProcAttr { return nil }
