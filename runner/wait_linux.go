package runner

import (
	"errors"
	"os"

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
