package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/amx-dev/amx/engine/state"
	"github.com/amx-dev/amx/runner"
	"github.com/amx-dev/amx/runner/runnertest"
)

// planOf is a plan of one action per claim.
func planOf(claims ...state.Claim) *Plan {
	p := &Plan{Claims: claims}
	for range claims {
		p.Actions = append(p.Actions, runner.Action{Name: "a", Cmd: "true"})
	}
	return p
}

// TestAdmitReasons: the admission step over a store, capacity first.
func TestAdmitReasons(t *testing.T) {
	ctx := context.Background()
	st := state.NewMemory(state.Options{})
	defer st.Close()
	var capacity Capacity
	capacity.SetMax(3)
	plan := planOf(
		state.Claim{ID: "1", Action: "cleanup", Key: "db1", Max: 1},
		state.Claim{ID: "2", Action: "cleanup", Key: "db1", Max: 1}, // another alert, same host
		state.Claim{ID: "1", Action: "cleanup", Key: "db1", Max: 1}, // the first again, keyed
		state.Claim{ID: "4", Action: "cleanup", Key: "db2", Max: 1}, // beyond capacity
	)
	adm, err := Admit(ctx, st, plan, time.Minute, &capacity)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"", SkipFingerOver, state.Duplicate, SkipCapacity}
	if fmt.Sprint(adm.Reasons) != fmt.Sprint(want) {
		t.Errorf("reasons %q, want %q", adm.Reasons, want)
	}
	// Only what was admitted holds capacity.
	if capacity.Live() != 1 {
		t.Errorf("capacity holds %d, want 1", capacity.Live())
	}
}

// TestMaxUnderConcurrency: 100 notifications at once for one key with max
// 3 start exactly 3; their leases end, and the key has room again.
func TestMaxUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	st := state.NewMemory(state.Options{})
	defer st.Close()
	var capacity Capacity
	var mu sync.Mutex
	var leases []state.Lease
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			adm, err := Admit(ctx, st, planOf(state.Claim{ID: fmt.Sprint(i), Action: "reboot", Key: "h1", Max: 3}), 0, &capacity)
			if err != nil {
				t.Error(err)
				return
			}
			if adm.Reasons[0] == "" {
				mu.Lock()
				leases = append(leases, adm.Leases[0])
				mu.Unlock()
			} else if adm.Reasons[0] != SkipFingerOver {
				t.Errorf("skipped for %q", adm.Reasons[0])
			}
		})
	}
	wg.Wait()
	if len(leases) != 3 || capacity.Live() != 3 {
		t.Fatalf("%d admitted, capacity %d: want 3", len(leases), capacity.Live())
	}
	for _, l := range leases {
		st.Release(l)
		capacity.give(1)
	}
	adm, _ := Admit(ctx, st, planOf(state.Claim{ID: "next", Action: "reboot", Key: "h1", Max: 3}), 0, &capacity)
	if adm.Reasons[0] != "" {
		t.Errorf("after the processes ended: %q", adm.Reasons[0])
	}
}

// TestBackstop: a process runs here for an alert whose resolve another
// replica received and whose broadcast this one missed; the backstop finds
// the tombstone and signals it.
func TestBackstop(t *testing.T) {
	dir := t.TempDir()
	e, _ := reloadable(t, dir, fmt.Sprintf(`routes:
  - name: long
    wait: false
    resolved_signal: SIGUSR1
    lua: exec("sh", "-c", 'trap "echo usr1 > $0/signalled; exit 0" USR1; echo $$ > $0/pid; while :; do sleep 0.05; done', %q)
`, dir))
	m, err := Decode([]byte(`{"status":"firing","alerts":[{"status":"firing","fingerprint":"f1","startsAt":"2026-01-01T00:00:00Z","labels":{"a":"b"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if failures, busy := e.Handle(context.Background(), m); len(failures) > 0 || busy != nil {
		t.Fatal(failures, busy)
	}
	runnertest.ReadInt(t, filepath.Join(dir, "pid"))
	e.backstopOnce(time.Second)
	if _, err := os.Stat(filepath.Join(dir, "signalled")); err == nil {
		t.Fatal("signalled without a resolve")
	}
	// The other replica's resolve: only its tombstone reaches the store.
	if _, err := e.state.Admit(context.Background(), state.Batch{Tombstones: []string{occurrence(&m.Alerts[0])}}); err != nil {
		t.Fatal(err)
	}
	e.backstopOnce(time.Second)
	runnertest.Eventually(t, "the process signalled by the backstop", func() bool {
		_, err := os.Stat(filepath.Join(dir, "signalled"))
		return err == nil
	})
}

// TestLeaseGivenBackWhenItsProcessEnds: a process that ends while its
// delivery waits for another no longer counts for max; only the last one
// to end gives its lease back with the settle.
func TestLeaseGivenBackWhenItsProcessEnds(t *testing.T) {
	dir := t.TempDir()
	e, _ := reloadable(t, dir, fmt.Sprintf(`routes:
  - name: r
    lua: |
      if alert.labels.long then
        exec("sh", "-c", 'echo $$ > $0/pid; while [ ! -e $0/stop ]; do sleep 0.05; done', %q)
      end
      exec{"sh", "-c", 'echo x >> $0/ran', %[1]q, key = "k", max = 1}
`, dir))
	msg := func(start int, labels string) *Message {
		m, err := Decode(fmt.Appendf(nil, `{"status":"firing","alerts":[{"status":"firing","fingerprint":"f1","startsAt":"2026-01-01T00:%02d:00Z","labels":%s}]}`, start, labels))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	answered := make(chan []string, 1)
	go func() {
		failures, _ := e.Handle(context.Background(), msg(0, `{"long":"yes"}`))
		answered <- failures
	}()
	defer func() {
		writeTestFile(t, dir, "stop", "")
		<-answered
	}()
	runnertest.ReadInt(t, filepath.Join(dir, "pid"))
	// The first notification's short process ends on its own while its
	// long one runs: a later occurrence's short one is then within max.
	for start := 1; ; start++ {
		if failures, busy := e.Handle(t.Context(), msg(start, `{"short":"yes"}`)); len(failures) != 0 || busy != nil {
			t.Fatalf("%q %v", failures, busy)
		}
		if ran, _ := os.ReadFile(filepath.Join(dir, "ran")); len(ran) == 4 {
			break
		}
		if start == 50 {
			t.Fatal("the short process's lease was held while its delivery waited")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
