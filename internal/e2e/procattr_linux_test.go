package e2e

import "syscall"

// childAttr puts a child in a process group of its own, and has the kernel
// kill it if the test binary dies without cleaning up (go test -timeout).
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
