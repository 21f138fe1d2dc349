//go:build !linux

package demo

import "syscall"

// sysProcAttr puts a child in its own process group. Only Linux has a
// parent-death signal; elsewhere a killed demo may leave children behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
