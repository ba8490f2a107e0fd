// Package runnertest helps tests that start real processes: waiting for a
// condition without fixed sleeps, reading a pid a child wrote, and telling
// whether a process is gone.
package runnertest

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Deadline bounds every wait. It is generous because process start is slow
// and test machines are noisy; tests must not assert durations.
const Deadline = 30 * time.Second

// Eventually polls cond until it holds, and fails the test after Deadline.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(Deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ReadInt waits until file holds one complete line with an integer, such as
// a pid written by `echo $! > file`, and returns it.
func ReadInt(t testing.TB, file string) int {
	t.Helper()
	var n int
	Eventually(t, "an integer in "+file, func() bool {
		b, err := os.ReadFile(file)
		if err != nil || !bytes.HasSuffix(b, []byte("\n")) {
			return false
		}
		n, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	return n
}

// Gone reports whether a process no longer runs. A zombie counts as gone:
// whether its new parent has reaped it yet is not the test's concern.
func Gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// The state follows the command name, which may hold spaces: "(sh) S ...".
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return len(fields) > 0 && fields[0] == "Z"
}
