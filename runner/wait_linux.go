package runner

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// waitExited waits until the process has exited without reaping it, so its
// pid, and with it the process group id, cannot be reused while amx may
// still signal the group. It reports whether it waited.
//
// With a pidfd (Linux 5.3 and later) the wait parks the goroutine in Go's
// network poller, which watches every process on one thread: a blocking
// waitid would pin an OS thread per running process, and under a task
// limit (systemd's TasksMax) amx aborted when it could not make more.
func waitExited(pid, pidfd int) bool {
	if pidfd < 0 {
		return blockingWait(pid)
	}
	// Most often the process has exited already: its output closed. Then
	// the poller is not needed.
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PIDFD, pidfd, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil); err == nil && info.Signo != 0 {
		unix.Close(pidfd)
		return true
	}
	if err := unix.SetNonblock(pidfd, true); err != nil {
		unix.Close(pidfd)
		return blockingWait(pid)
	}
	f := os.NewFile(uintptr(pidfd), "pidfd")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return blockingWait(pid)
	}
	exited, failed := false, false
	err = rc.Read(func(fd uintptr) bool {
		var info unix.Siginfo // zero: waitid leaves it so while the process runs
		err := unix.Waitid(unix.P_PIDFD, int(fd), &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			return false
		case err != nil:
			failed = true
			return true
		}
		exited = info.Signo != 0
		return exited
	})
	if err != nil || failed {
		return blockingWait(pid)
	}
	return exited
}

// blockingWait is waitExited on a thread of its own, where the process has
// no pidfd.
func blockingWait(pid int) bool {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return err == nil
		}
	}
}

// sysProcAttr starts a process in its own process group, and asks for its
// pidfd.
func sysProcAttr(pidfd *int) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, PidFD: pidfd}
}

// outputPipe returns a pipe for a process's output: the read end
// non-blocking, for Go's poller; the write end blocking, as a child
// expects its output to be.
func outputPipe() (r, w *os.File, err error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, nil, os.NewSyscallError("pipe2", err)
	}
	if err := unix.SetNonblock(p[0], true); err != nil {
		unix.Close(p[0])
		unix.Close(p[1])
		return nil, nil, os.NewSyscallError("fcntl", err)
	}
	return os.NewFile(uintptr(p[0]), "|0"), os.NewFile(uintptr(p[1]), "|1"), nil
}
