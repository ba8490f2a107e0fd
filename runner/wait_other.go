//go:build unix && !linux

package runner

import (
	"os"
	"syscall"
)

// waitExited cannot wait without reaping here; the process is marked exited
// only after reap, leaving a short window in which a signal could reach a
// reused process group id; and output held open by what a command left
// running is read until its holders close it.
func waitExited(int) bool { return false }

// sysProcAttr starts a process in its own process group.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// outputPipe returns a pipe for a process's output: os.Pipe's read end is
// non-blocking, for Go's poller, and its write end is made blocking again
// when it is handed to the child.
func outputPipe() (r, w *os.File, err error) { return os.Pipe() }
