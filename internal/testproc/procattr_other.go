//go:build !linux

package testproc

import "syscall"

// DieWithParent is Linux-only; elsewhere a killed test binary may leave
// its servers behind.
func DieWithParent() *syscall.SysProcAttr { return nil }
