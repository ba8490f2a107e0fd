package runner

import (
	"errors"

	"golang.org/x/sys/unix"
)

// waitExited blocks until the process has exited without reaping it, so its
// pid, and with it the process group id, cannot be reused while amx may still
// signal the group. It reports whether it waited.
func waitExited(pid int) bool {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return err == nil
		}
	}
}
