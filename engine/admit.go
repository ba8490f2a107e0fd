package engine

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/amx-dev/amx/engine/state"
	"github.com/amx-dev/amx/luaapi"
)

// Skip reasons of admission, beside the store's (state.Duplicate, Once,
// Resolved, Max, Cooldown, Rate).
const (
	// SkipFingerOver: max live processes of the action for its key run.
	SkipFingerOver = state.Max
	// SkipCapacity: amx runs max_processes already; a retry may find room.
	SkipCapacity = "capacity"
)

// Capacity counts the processes of one amx against max_processes.
type Capacity struct {
	max  atomic.Int64 // zero: no limit
	live atomic.Int64
}

// SetMax changes the limit; zero is none.
func (c *Capacity) SetMax(n int) { c.max.Store(int64(n)) }

// Live is the number of processes admitted and not yet ended.
func (c *Capacity) Live() int { return int(c.live.Load()) }

// take reserves up to n slots and returns how many it got.
func (c *Capacity) take(n int) int {
	for {
		live, limit := c.live.Load(), c.max.Load()
		got := int64(n)
		if limit > 0 {
			got = min(got, max(0, limit-live))
		}
		if got == 0 || c.live.CompareAndSwap(live, live+got) {
			return int(got)
		}
	}
}

func (c *Capacity) give(n int) { c.live.Add(-int64(n)) }

// Admission is what became of a plan's actions: Reasons[i] is "" for an
// admitted action, else why it does not start (state.Pending for a copy
// of a delivery whose answer is not known yet).
type Admission struct {
	Reasons []string
	Leases  []state.Lease
	// Stale marks actions whose claim an earlier run of amx left pending.
	Stale []bool
	// Refused are the script writes the store's bounds refused.
	Refused []string
}

// Admit is the one admission step, shared by the server and by amx test
// and amx explain (over a scratch store): it takes capacity for the plan's
// actions, as far as capacity allows, then asks the store about each
// (duplicate, once, resolved, max, cooldown, rate), recording the plan's
// tombstones and script writes in the same commit. window is the dedupe
// window; capacity nil is no limit.
//
// On an error of the store, nothing is admitted and nothing is held.
func Admit(ctx context.Context, st state.Store, plan *Plan, window time.Duration, capacity *Capacity) (Admission, error) {
	n := len(plan.Actions)
	adm := Admission{Reasons: make([]string, n), Leases: make([]state.Lease, n), Stale: make([]bool, n)}
	room := n
	if capacity != nil {
		room = capacity.take(n)
	}
	for i := room; i < n; i++ {
		adm.Reasons[i] = SkipCapacity
	}
	// The plan is this notification's own: its claims are completed in
	// place rather than copied, which for a large group is megabytes.
	claims := plan.Claims[:room]
	for i := range claims {
		claims[i].Window = window
	}
	res, err := st.Admit(ctx, state.Batch{Tombstones: plan.Tombstones, Claims: claims, Writes: plan.Writes})
	if err != nil {
		var settle []state.Settlement
		for i, v := range res.Verdicts {
			if v.Reason == "" {
				st.Release(v.Lease)
				settle = append(settle, state.Settlement{ID: claims[i].ID, Once: claims[i].Once, Outcome: state.Failed})
			}
		}
		st.Settle(ctx, settle)
		if capacity != nil {
			capacity.give(room)
		}
		return Admission{}, err
	}
	admitted := make(map[string]bool)
	taken := 0
	for i, v := range res.Verdicts {
		adm.Reasons[i], adm.Leases[i], adm.Stale[i] = v.Reason, v.Lease, v.Stale
		id := claims[i].ID
		switch {
		case v.Reason == "":
			taken++
			admitted[id] = true
		case v.Reason == state.Pending && admitted[id]:
			// The same action twice for one occurrence in this very
			// notification (a keyed action exec'd with other
			// arguments): the first runs.
			adm.Reasons[i] = state.Duplicate
		}
	}
	if capacity != nil {
		capacity.give(room - taken)
	}
	adm.Refused = res.Refused
	return adm, nil
}

// StateReader is what scripts read through state.get.
func StateReader(ctx context.Context, st state.Store) luaapi.StateReader {
	return func(route, key string) (luaapi.StateValue, bool, error) {
		v, ok, err := st.Get(ctx, route, key)
		return luaapi.StateValue{Str: v.Str, Num: v.Num, IsNum: v.IsNum}, ok, err
	}
}
