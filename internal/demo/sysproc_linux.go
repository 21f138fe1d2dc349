package demo

import "syscall"

// sysProcAttr puts a child in its own process group and has the kernel kill
// it when the demo dies (Pdeathsig). Pdeathsig fires when the creating
// thread exits, not the process, so Run locks its goroutine to one OS
// thread for as long as children run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
