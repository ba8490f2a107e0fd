package runner

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// exitedNow reports whether the process has exited, without reaping it.
// Until amx reaps it its pid, and with it the process group id, cannot be
// reused, so asking by pid is safe.
func exitedNow(pid int) bool {
	var info unix.Siginfo // zero: waitid leaves it so while the process runs
	err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	return err == nil && info.Signo != 0
}

// waitExited waits until the process has exited without reaping it, so its
// pid, and with it the process group id, cannot be reused while amx may
// still signal the group. It reports whether it waited.
//
// With a pidfd (Linux 5.3 and later) the wait parks the goroutine in Go's
// network poller, which watches every process on one thread: a blocking
// waitid would pin an OS thread per running process, and under a task
// limit (systemd's TasksMax) amx aborted when it could not make more. The
// pidfd is opened only here, for processes that run long enough to be
// watched: the process is not reaped yet, so its pid is still its own.
func waitExited(pid int) bool {
	if exitedNow(pid) {
		return true
	}
	pidfd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
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
		var info unix.Siginfo
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

// sysProcAttr starts a process in its own process group.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// outputPipe returns a pipe for a process's output: the read end
// non-blocking, for Go's poller; the write end blocking, as a child
// expects its output to be.
func outputPipe() (r, w *os.File, err error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, nil, os.NewSyscallError("pipe2", err)
	}
	// A new pipe's read end has no other status flag to keep.
	if _, err := unix.FcntlInt(uintptr(p[0]), unix.F_SETFL, unix.O_NONBLOCK); err != nil {
		unix.Close(p[0])
		unix.Close(p[1])
		return nil, nil, os.NewSyscallError("fcntl", err)
	}
	return os.NewFile(uintptr(p[0]), "|0"), os.NewFile(uintptr(p[1]), "|1"), nil
}
