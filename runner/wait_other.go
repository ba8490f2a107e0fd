//go:build unix && !linux

package runner

// waitExited cannot wait without reaping here; the process is marked exited
// only after Wait, leaving a short window in which a signal could reach a
// reused process group id.
func waitExited(int, int) bool { return false }
