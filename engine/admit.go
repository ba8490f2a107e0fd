package engine

import "github.com/amx-dev/amx/runner"

// Admit decides whether an action may start, given the processes counted
// live: "" to start it, runner.SkipFingerOver when its max live processes
// for its key and fingerprint are running, runner.SkipCapacity when
// maxProcesses are (zero: no limit). An action without a fingerprint is not
// counted against max, as with the old executor.
//
// It is the one copy of the admission rule: the runner applies it,
// atomically, to every action it is asked to start, and amx test and amx
// explain apply it to what a test says is running.
func Admit(a *runner.Action, live runner.Counts, maxProcesses int) string {
	switch {
	case a.Max > 0 && a.Fingerprint != "" && live.Live(a.Key, a.Fingerprint) >= a.Max:
		return runner.SkipFingerOver
	case maxProcesses > 0 && live.Total() >= maxProcesses:
		return runner.SkipCapacity
	}
	return ""
}
