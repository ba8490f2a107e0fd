package engine

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/amx-dev/amx/runner"
	"github.com/amx-dev/amx/runner/runnertest"
)

// fakeCounts are live processes by key and fingerprint.
type fakeCounts map[[2]string]int

func (c fakeCounts) Live(key, fingerprint string) int { return c[[2]string{key, fingerprint}] }
func (c fakeCounts) Total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// TestAdmit is the admission rule on its own.
func TestAdmit(t *testing.T) {
	live := fakeCounts{{"k", "f"}: 2, {"other", "f"}: 1}
	for _, tc := range []struct {
		name   string
		action runner.Action
		max    int
		want   string
	}{
		{"under max", runner.Action{Key: "k", Fingerprint: "f", Max: 3}, 0, ""},
		{"at max", runner.Action{Key: "k", Fingerprint: "f", Max: 2}, 0, runner.SkipFingerOver},
		{"another fingerprint", runner.Action{Key: "k", Fingerprint: "g", Max: 1}, 0, ""},
		{"no max", runner.Action{Key: "k", Fingerprint: "f"}, 0, ""},
		{"no fingerprint: max does not count", runner.Action{Key: "k", Max: 1}, 0, ""},
		{"at max_processes", runner.Action{Key: "new", Fingerprint: "f"}, 3, runner.SkipCapacity},
		{"under max_processes", runner.Action{Key: "new", Fingerprint: "f"}, 4, ""},
		{"max before capacity", runner.Action{Key: "k", Fingerprint: "f", Max: 1}, 3, runner.SkipFingerOver},
	} {
		if got := Admit(&tc.action, live, tc.max); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// admittingRunner is a runner that admits as the engine's does, with a
// cap on processes the test may change.
func admittingRunner(t *testing.T) (*runner.Runner, runner.Metrics, *atomic.Int64) {
	t.Helper()
	m := runner.Metrics{
		ProcessesCurrent: prometheus.NewGauge(prometheus.GaugeOpts{Name: "current"}),
		Signalled:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "signalled"}, []string{"result"}),
		Skipped:          prometheus.NewCounterVec(prometheus.CounterOpts{Name: "skipped"}, []string{"reason"}),
		Errors:           prometheus.NewCounterVec(prometheus.CounterOpts{Name: "errors"}, []string{"stage"}),
	}
	maxProcs := new(atomic.Int64)
	r := runner.New(runner.Options{Metrics: m, Admit: func(a *runner.Action, live runner.Counts) string {
		return Admit(a, live, int(maxProcs.Load()))
	}})
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // stop whatever a test left running
		_ = r.Shutdown(ctx)
	})
	return r, m, maxProcs
}

// TestMaxUnderConcurrency starts 100 actions at once for one fingerprint with
// max 3: exactly 3 run and 97 are skipped, then a resolve ends the 3.
func TestMaxUnderConcurrency(t *testing.T) {
	r, m, _ := admittingRunner(t)
	a := runner.Action{Name: "slow", Key: "sleep", Cmd: "sleep", Args: []string{"1000"}, Fingerprint: "fp1", Max: 3,
		Signal: syscall.SIGTERM}
	// Another command on the same fingerprint has its own count.
	other := a
	other.Key = "other"
	other.Max = 1

	var wg sync.WaitGroup
	results := make([]runner.Result, 100)
	for i := range results {
		wg.Go(func() { results[i] = r.Run([]runner.Action{a})[0] })
	}
	otherDone := make(chan runner.Result, 1)
	go func() { otherDone <- r.Run([]runner.Action{other})[0] }()

	skipped := m.Skipped.WithLabelValues(runner.SkipFingerOver)
	runnertest.Eventually(t, "97 skips", func() bool { return testutil.ToFloat64(skipped) == 97 })
	runnertest.Eventually(t, "4 live processes", func() bool { return testutil.ToFloat64(m.ProcessesCurrent) == 4 })

	r.Resolve([]string{"fp1"})
	wg.Wait()
	<-otherDone
	ran := 0
	for _, res := range results {
		switch {
		case res.Skipped == runner.SkipFingerOver:
		case res.Pid != 0:
			ran++
			// Ended by its resolved signal: stopped on purpose, no failure.
			if !res.Resolved || res.Err != nil || res.ExitCode != -1 {
				t.Errorf("want a process ended by its resolve, got %+v", res)
			}
		default:
			t.Errorf("neither ran nor skipped: %+v", res)
		}
	}
	if ran != 3 {
		t.Errorf("%d processes ran, want 3", ran)
	}
	if n := testutil.ToFloat64(m.Signalled.WithLabelValues("ok")); n != 4 {
		t.Errorf("signalled ok = %v, want 4", n)
	}
	// The slots are free again.
	res := r.Run([]runner.Action{{Key: "sleep", Cmd: "true", Fingerprint: "fp1", Max: 3}})[0]
	if res.Skipped != "" || res.Err != nil {
		t.Errorf("after the resolve: %+v", res)
	}
}

// TestMaxProcesses: past the cap, an action is skipped for capacity, not
// queued; the cap may change while processes run.
func TestMaxProcesses(t *testing.T) {
	r, m, maxProcs := admittingRunner(t)
	maxProcs.Store(2)
	act := func(fp string) runner.Action {
		return runner.Action{Name: "sleep", Cmd: "sleep", Args: []string{"1000"}, Fingerprint: fp, NoWait: true}
	}
	results := r.Run([]runner.Action{act("a"), act("b"), act("c")})
	if !results[0].Started || !results[1].Started || results[2].Skipped != runner.SkipCapacity {
		t.Fatalf("results %+v", results)
	}
	if n := testutil.ToFloat64(m.Skipped.WithLabelValues(runner.SkipCapacity)); n != 1 {
		t.Errorf("skipped for capacity: %v, want 1", n)
	}
	maxProcs.Store(3)
	if res := r.Run([]runner.Action{act("c")}); !res[0].Started {
		t.Errorf("after raising the cap: %+v", res[0])
	}
	r.Resolve([]string{"a", "b", "c"})
	runnertest.Eventually(t, "the processes to end", func() bool { return testutil.ToFloat64(m.ProcessesCurrent) == 0 })
	maxProcs.Store(1)
	if res := r.Run([]runner.Action{{Name: "true", Cmd: "true", Fingerprint: "d"}}); res[0].Err != nil || res[0].Skipped != "" {
		t.Errorf("with room again: %+v", res[0])
	}
}
