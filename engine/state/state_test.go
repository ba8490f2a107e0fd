package state

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// clock is a settable Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *clock { return &clock{t: time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)} }

// backends opens each backend with the options, for a test that runs on
// both.
func backends(t *testing.T, opts Options) map[string]Store {
	t.Helper()
	bolt, err := OpenBolt(filepath.Join(t.TempDir(), "state.db"), time.Second, opts)
	if err != nil {
		t.Fatal(err)
	}
	stores := map[string]Store{"memory": NewMemory(opts), "bolt": bolt}
	for _, s := range stores {
		t.Cleanup(func() { s.Close() })
	}
	return stores
}

func admitOne(t *testing.T, s Store, c Claim) Verdict {
	t.Helper()
	adm, err := s.Admit(context.Background(), Batch{Claims: []Claim{c}})
	if err != nil {
		t.Fatal(err)
	}
	return adm.Verdicts[0]
}

// settle settles a claim as the engine does, once the answer is written.
func settle(t *testing.T, s Store, c Claim, outcome string) {
	t.Helper()
	if err := s.Settle(context.Background(), []Settlement{{ID: c.ID, Once: c.Once, Outcome: outcome, Window: c.Window}}); err != nil {
		t.Fatal(err)
	}
}

// TestResends: what a copy of a claim meets after each outcome of the
// first, as the table of re-sends in the docs says.
func TestResends(t *testing.T) {
	for _, tc := range []struct {
		name    string
		once    bool
		outcome string
		after   time.Duration
		want    string
	}{
		{"failed: a retry runs", false, Failed, time.Second, ""},
		{"succeeded, answer lost: skipped past the window", false, Succeeded, time.Hour, Duplicate},
		{"succeeded, answer lost: runs after retention", false, Succeeded, 25 * time.Hour, ""},
		{"delivered: a copy in the window is a duplicate", false, Delivered, time.Minute, Duplicate},
		{"delivered: a repeat after the window runs", false, Delivered, 3 * time.Minute, ""},
		{"once delivered: a repeat is refused", true, Delivered, 3 * time.Hour, Once},
		{"once failed: a retry runs", true, Failed, time.Second, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			for name, s := range backends(t, Options{Now: clk.now}) {
				c := Claim{ID: "a/" + name, Once: tc.once, Action: "a", Key: "k", Window: 2 * time.Minute}
				if v := admitOne(t, s, c); v.Reason != "" {
					t.Fatalf("%s: first claim refused: %q", name, v.Reason)
				}
				settle(t, s, c, tc.outcome)
				clk.add(tc.after)
				if v := admitOne(t, s, c); v.Reason != tc.want {
					t.Errorf("%s: copy got %q, want %q", name, v.Reason, tc.want)
				}
				clk.add(-tc.after)
			}
		})
	}
}

// TestPendingCopyAwaits: a copy of a claim still pending waits for its
// outcome.
func TestPendingCopyAwaits(t *testing.T) {
	for name, s := range backends(t, Options{}) {
		c := Claim{ID: "x", Action: "a", Key: "k", Window: time.Minute}
		admitOne(t, s, c)
		if v := admitOne(t, s, c); v.Reason != Pending {
			t.Fatalf("%s: copy got %q, want pending", name, v.Reason)
		}
		got := make(chan string)
		go func() {
			out, _ := s.Await(context.Background(), c.ID)
			got <- out
		}()
		settle(t, s, c, Failed)
		if out := <-got; out != Failed {
			t.Errorf("%s: awaited %q, want failed", name, out)
		}
	}
}

func TestLimits(t *testing.T) {
	clk := newClock()
	for name, s := range backends(t, Options{Now: clk.now}) {
		t.Run(name, func(t *testing.T) {
			// max counts leases per action and key.
			c1 := Claim{ID: "m1", Action: "cleanup", Key: "db1", Max: 1}
			v1 := admitOne(t, s, c1)
			if v := admitOne(t, s, Claim{ID: "m2", Action: "cleanup", Key: "db1", Max: 1}); v.Reason != Max {
				t.Errorf("second lease on db1: %q, want %q", v.Reason, Max)
			}
			if v := admitOne(t, s, Claim{ID: "m3", Action: "cleanup", Key: "db2", Max: 1}); v.Reason != "" {
				t.Errorf("lease on db2: %q", v.Reason)
			}
			s.Release(v1.Lease)
			if v := admitOne(t, s, Claim{ID: "m2", Action: "cleanup", Key: "db1", Max: 1}); v.Reason != "" {
				t.Errorf("after release: %q", v.Reason)
			}

			// cooldown per action and key; the same occurrence retried
			// after a failure passes.
			cd := Claim{ID: "c1", Action: "reboot", Key: "h1", Cooldown: 30 * time.Minute}
			admitOne(t, s, cd)
			settle(t, s, cd, Failed)
			if v := admitOne(t, s, cd); v.Reason != "" {
				t.Errorf("retry in cooldown: %q", v.Reason)
			}
			other := Claim{ID: "c2", Action: "reboot", Key: "h1", Cooldown: 30 * time.Minute}
			if v := admitOne(t, s, other); v.Reason != Cooldown {
				t.Errorf("other occurrence in cooldown: %q", v.Reason)
			}
			if v := admitOne(t, s, Claim{ID: "c3", Action: "reboot", Key: "h2", Cooldown: 30 * time.Minute}); v.Reason != "" {
				t.Errorf("other key: %q", v.Reason)
			}
			clk.add(31 * time.Minute)
			if v := admitOne(t, s, other); v.Reason != "" {
				t.Errorf("after cooldown: %q", v.Reason)
			}

			// rate per action across keys.
			rate := RateLimit{N: 2, Per: 10 * time.Minute}
			for i, want := range []string{"", "", Rate} {
				if v := admitOne(t, s, Claim{ID: fmt.Sprint("r", i), Action: "drain", Key: fmt.Sprint("h", i), Rate: rate}); v.Reason != want {
					t.Errorf("start %d: %q, want %q", i, v.Reason, want)
				}
			}
			clk.add(11 * time.Minute)
			if v := admitOne(t, s, Claim{ID: "r9", Action: "drain", Key: "h9", Rate: rate}); v.Reason != "" {
				t.Errorf("after the window: %q", v.Reason)
			}

			// a tombstone refuses firing claims of its occurrence only.
			if _, err := s.Admit(context.Background(), Batch{Tombstones: []string{"fp1@1"}}); err != nil {
				t.Fatal(err)
			}
			if v := admitOne(t, s, Claim{ID: "t1", Action: "a", Occurrence: "fp1@1", Firing: true}); v.Reason != Resolved {
				t.Errorf("late firing copy: %q", v.Reason)
			}
			if v := admitOne(t, s, Claim{ID: "t2", Action: "a", Occurrence: "fp1@1"}); v.Reason != "" {
				t.Errorf("resolved alert's own action: %q", v.Reason)
			}
			if v := admitOne(t, s, Claim{ID: "t3", Action: "a", Occurrence: "fp1@2", Firing: true}); v.Reason != "" {
				t.Errorf("next occurrence: %q", v.Reason)
			}
		})
	}
}

// TestWritesOnce: an invocation's writes apply once per ID, incr adds, and
// the bounds refuse with a reason.
func TestWritesOnce(t *testing.T) {
	ctx := context.Background()
	for name, s := range backends(t, Options{}) {
		incr := Writes{ID: "route/fp@1", Namespace: "reboot", Ops: []Write{{Op: "incr", Key: "h1", Value: Value{Num: 1, IsNum: true}, TTL: time.Hour}}}
		for range 3 {
			s.Admit(ctx, Batch{Writes: []Writes{incr}})
		}
		incr.ID = "route/fp@2"
		s.Admit(ctx, Batch{Writes: []Writes{incr}})
		if v, ok, _ := s.Get(ctx, "reboot", "h1"); !ok || v.Num != 2 {
			t.Errorf("%s: after two occurrences: %+v %v, want 2", name, v, ok)
		}
		if _, ok, _ := s.Get(ctx, "other", "h1"); ok {
			t.Errorf("%s: namespaces are not apart", name)
		}
		set := Writes{ID: "s", Namespace: "reboot", Ops: []Write{{Op: "set", Key: "h1", Value: Value{Str: "x"}}}}
		s.Admit(ctx, Batch{Writes: []Writes{set}})
		adm, _ := s.Admit(ctx, Batch{Writes: []Writes{{ID: "i", Namespace: "reboot", Ops: []Write{{Op: "incr", Key: "h1", Value: Value{Num: 1, IsNum: true}}}}}})
		if len(adm.Refused) != 1 || !strings.Contains(adm.Refused[0], "incr of a string") {
			t.Errorf("%s: incr of a string: %q", name, adm.Refused)
		}
	}
}

// TestOnceSurvivesEntries: a once mark outlives 200,000 ordinary entries
// in a store bounded well below that.
func TestOnceSurvivesEntries(t *testing.T) {
	evicted := map[string]int{}
	var mu sync.Mutex
	opts := Options{MaxEntries: 10_000}
	for name, s := range backends(t, opts) {
		clear(evicted)
		s.OnEvict(func(kind string) { mu.Lock(); evicted[kind]++; mu.Unlock() })
		once := Claim{ID: "once", Once: true, Action: "a", Window: time.Minute}
		admitOne(t, s, once)
		settle(t, s, once, Delivered)
		batch := make([]Claim, 1000)
		for i := range 200 {
			for j := range batch {
				batch[j] = Claim{ID: fmt.Sprint(i, "/", j), Action: "b", Window: time.Hour}
			}
			s.Admit(context.Background(), Batch{Claims: batch})
			var done []Settlement
			for _, c := range batch {
				done = append(done, Settlement{ID: c.ID, Outcome: Succeeded, Window: c.Window})
			}
			s.Settle(context.Background(), done)
			for i := range done {
				done[i].Outcome = Delivered
			}
			s.Settle(context.Background(), done)
		}
		if v := admitOne(t, s, once); v.Reason != Once {
			t.Errorf("%s: once mark lost: %q", name, v.Reason)
		}
		entries, _ := s.List(context.Background(), KindClaim+"/")
		if len(entries) > opts.MaxEntries+1000 {
			t.Errorf("%s: %d entries kept, bound %d", name, len(entries), opts.MaxEntries)
		}
		if evicted[KindClaim] == 0 {
			t.Errorf("%s: nothing counted as evicted", name)
		}
	}
}

// TestBoltSurvivesRestart: what the file holds after a close, and a claim
// left pending by a run that never settled it.
func TestBoltSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := OpenBolt(path, time.Second, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	once := Claim{ID: "once", Once: true, Action: "a"}
	plain := Claim{ID: "plain", Action: "b"}
	cool := Claim{ID: "cool", Action: "c", Key: "h1", Cooldown: time.Hour}
	s.Admit(ctx, Batch{Claims: []Claim{once, plain, cool}, Writes: []Writes{{ID: "w", Namespace: "r", Ops: []Write{{Op: "set", Key: "k", Value: Value{Str: "v"}}}}}})
	// No settle: as if amx were killed while the processes ran.
	if _, err := OpenBolt(path, 100*time.Millisecond, Options{}); err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("second open of a held file: %v", err)
	}
	s.Close()

	s, err = OpenBolt(path, time.Second, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v := admitOne(t, s, once); v.Reason != Once || !v.Stale {
		t.Errorf("once claim left pending: %+v, want once, stale", v)
	}
	if v := admitOne(t, s, plain); v.Reason != "" || !v.Stale {
		t.Errorf("plain claim left pending: %+v, want admitted, stale", v)
	}
	if v := admitOne(t, s, Claim{ID: "cool2", Action: "c", Key: "h1", Cooldown: time.Hour}); v.Reason != Cooldown {
		t.Errorf("cooldown after restart: %q", v.Reason)
	}
	if v, ok, _ := s.Get(ctx, "r", "k"); !ok || v.Str != "v" {
		t.Errorf("script value after restart: %+v %v", v, ok)
	}
	n, err := s.Delete(ctx, ID(KindCooldown))
	if n != 1 || err != nil {
		t.Errorf("delete cooldowns: %d, %v", n, err)
	}
	if v := admitOne(t, s, Claim{ID: "cool3", Action: "c", Key: "h1", Cooldown: time.Hour}); v.Reason != "" {
		t.Errorf("after deleting the cooldown: %q", v.Reason)
	}
}

// TestDeleteCounts: a delete says how many entries it removed, in memory
// as on disk.
func TestDeleteCounts(t *testing.T) {
	ctx := context.Background()
	for name, s := range backends(t, Options{}) {
		for _, id := range []string{"a", "b"} {
			admitOne(t, s, Claim{ID: id, Action: "c", Key: id, Cooldown: time.Hour})
		}
		if n, err := s.Delete(ctx, ID(KindCooldown)); n != 2 || err != nil {
			t.Errorf("%s: delete cooldowns: %d, %v; want 2", name, n, err)
		}
		if n, _ := s.Delete(ctx, ID(KindCooldown)); n != 0 {
			t.Errorf("%s: delete again: %d, want 0", name, n)
		}
	}
}

// BenchmarkDelivery is one notification's way through the store: one
// claim admitted, settled, then delivered; in parallel, as concurrent
// notifications come.
func BenchmarkDelivery(b *testing.B) {
	for _, backend := range []string{"memory", "bolt"} {
		b.Run(backend, func(b *testing.B) {
			s := NewMemory(Options{})
			if backend == "bolt" {
				var err error
				if s, err = OpenBolt(filepath.Join(b.TempDir(), "state.db"), time.Second, Options{}); err != nil {
					b.Fatal(err)
				}
			}
			defer s.Close()
			ctx := context.Background()
			var n atomic.Int64
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					c := Claim{ID: fmt.Sprint("cmd /bin/true/group/", n.Add(1)), Action: "cmd /bin/true", Key: "fp", Window: 2 * time.Minute}
					adm, err := s.Admit(ctx, Batch{Claims: []Claim{c}})
					if err != nil || adm.Verdicts[0].Reason != "" {
						b.Fatal(err, adm.Verdicts)
					}
					s.Release(adm.Verdicts[0].Lease)
					s.Settle(ctx, []Settlement{{ID: c.ID, Outcome: Succeeded, Window: c.Window}})
					s.Settle(ctx, []Settlement{{ID: c.ID, Outcome: Delivered, Window: c.Window}})
				}
			})
		})
	}
}

// TestCopySettlement: a copy's word on another delivery's claim turns a
// success into a delivered one, and nothing else.
func TestCopySettlement(t *testing.T) {
	for name, s := range backends(t, Options{}) {
		ctx := context.Background()
		c := Claim{ID: "x", Action: "a", Window: time.Hour}
		admitOne(t, s, c)
		copied := []Settlement{{ID: c.ID, Outcome: Delivered, Window: c.Window, Copy: true}}
		s.Settle(ctx, copied) // still pending: its own delivery settles it
		if v := admitOne(t, s, c); v.Reason != Pending {
			t.Errorf("%s: a copy settled a pending claim: %q", name, v.Reason)
		}
		settle(t, s, c, Succeeded)
		s.Settle(ctx, copied)
		entries, _ := s.List(ctx, KindClaim+"/x")
		if len(entries) != 1 || entries[0].State != Delivered {
			t.Errorf("%s: after a copy's delivered answer: %+v", name, entries)
		}
	}
}

// A value set keeps a copy of its string: a script's string may share the
// memory of a notification's whole body.
func TestSetOwnsItsValue(t *testing.T) {
	s := NewMemory(Options{})
	defer s.Close()
	body := []byte("db1 rebooted")
	v := unsafe.String(&body[0], len(body))
	s.Admit(context.Background(), Batch{Writes: []Writes{{ID: "w", Namespace: "r", Ops: []Write{{Op: "set", Key: "k", Value: Value{Str: v}}}}}})
	copy(body, "XXXXXXXXXXXX")
	if got, _, _ := s.Get(context.Background(), "r", "k"); got.Str != "db1 rebooted" {
		t.Errorf("the value shares the body's memory: %q", got.Str)
	}
}
