package engine

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/amx-dev/amx/engine/state"
	"github.com/amx-dev/amx/runner"
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
