package state

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/amx-dev/amx/engine/state/statetest"
)

func openRedis(t *testing.T, addr string) Store {
	t.Helper()
	s, err := OpenRedis(context.Background(), RedisOptions{Client: redis.NewClient(&redis.Options{Addr: addr}), Prefix: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestRedisStore: the store's operations on a real Redis, timed by the
// server's clock (short windows, waited out), and two replicas sharing it.
func TestRedisStore(t *testing.T) {
	addr := statetest.StartRedis(t)
	a, b := openRedis(t, addr), openRedis(t, addr)
	ctx := context.Background()

	// A claim pending on one replica is pending for the other, which
	// awaits its outcome.
	c := Claim{ID: "act/occ", Action: "act", Key: "k", Window: 300 * time.Millisecond, Max: 1}
	first := admitOne(t, a, c)
	if first.Reason != "" {
		t.Fatalf("first claim: %q", first.Reason)
	}
	if v := admitOne(t, b, c); v.Reason != Pending {
		t.Fatalf("the other replica's copy: %q, want pending", v.Reason)
	}
	if v := admitOne(t, b, Claim{ID: "act/occ2", Action: "act", Key: "k", Max: 1}); v.Reason != Max {
		t.Errorf("max across replicas: %q, want %q", v.Reason, Max)
	}
	done := make(chan string, 1)
	go func() { out, _ := b.Await(ctx, c.ID); done <- out }()
	settle(t, a, c, Delivered)
	a.Release(first.Lease)
	if out := <-done; out != Succeeded && out != Delivered {
		t.Errorf("awaited %q, want a success", out)
	}
	if v := admitOne(t, b, c); v.Reason != Duplicate {
		t.Errorf("copy in the window: %q", v.Reason)
	}
	time.Sleep(400 * time.Millisecond)
	if v := admitOne(t, b, c); v.Reason != "" {
		t.Errorf("repeat after the window: %q", v.Reason)
	} else {
		settle(t, b, c, Failed)
	}

	// Cooldown per key, rate per action, tombstones, script writes once.
	cd := Claim{ID: "c1", Action: "reboot", Key: "h1", Cooldown: 300 * time.Millisecond}
	admitOne(t, a, cd)
	if v := admitOne(t, b, Claim{ID: "c2", Action: "reboot", Key: "h1", Cooldown: time.Second}); v.Reason != Cooldown {
		t.Errorf("cooldown on the other replica: %q", v.Reason)
	}
	rate := RateLimit{N: 2, Per: 300 * time.Millisecond}
	for i, want := range []string{"", "", Rate} {
		if v := admitOne(t, []Store{a, b}[i%2], Claim{ID: fmt.Sprint("r", i), Action: "drain", Key: fmt.Sprint(i), Rate: rate}); v.Reason != want {
			t.Errorf("start %d: %q, want %q", i, v.Reason, want)
		}
	}
	if _, err := a.Admit(ctx, Batch{Tombstones: []string{"fp@1"}}); err != nil {
		t.Fatal(err)
	}
	if v := admitOne(t, b, Claim{ID: "t", Action: "x", Occurrence: "fp@1", Firing: true}); v.Reason != Resolved {
		t.Errorf("late firing copy: %q", v.Reason)
	}
	incr := Writes{ID: "w1", Namespace: "r", Ops: []Write{{Op: "incr", Key: "n", Value: Value{Num: 1, IsNum: true}, TTL: time.Hour}}}
	a.Admit(ctx, Batch{Writes: []Writes{incr}})
	b.Admit(ctx, Batch{Writes: []Writes{incr}}) // a copy: applied once
	incr.ID = "w2"
	b.Admit(ctx, Batch{Writes: []Writes{incr}})
	if v, ok, err := a.Get(ctx, "r", "n"); !ok || err != nil || v.Num != 2 {
		t.Errorf("incr across replicas: %+v %v %v, want 2", v, ok, err)
	}
	time.Sleep(400 * time.Millisecond)
	if v := admitOne(t, b, Claim{ID: "c3", Action: "reboot", Key: "h1", Cooldown: time.Second}); v.Reason != "" {
		t.Errorf("after the cooldown: %q", v.Reason)
	}

	// A replica that is gone leaves its claims abandoned: a once action
	// counts as started, another runs again.
	gone := openRedis(t, addr)
	once, plain := Claim{ID: "o", Once: true, Action: "o"}, Claim{ID: "p", Action: "p"}
	gone.Admit(ctx, Batch{Claims: []Claim{once, plain}})
	gone.Close()
	if v := admitOne(t, a, once); v.Reason != Once || !v.Stale {
		t.Errorf("once claim of a replica gone: %+v", v)
	}
	if v := admitOne(t, a, plain); v.Reason != "" || !v.Stale {
		t.Errorf("plain claim of a replica gone: %+v", v)
	}
	entries, err := a.List(ctx, KindCooldown+"/")
	if err != nil || len(entries) != 1 {
		t.Errorf("list cooldowns: %v %+v", err, entries)
	}
}

// TestRedisRestartKeepsOnce: with AOF, a once mark outlives a restart of
// Redis itself.
func TestRedisRestartKeepsOnce(t *testing.T) {
	r := statetest.NewRedis(t, true)
	s := openRedis(t, r.Addr)
	once := Claim{ID: "o", Once: true, Action: "o"}
	v := admitOne(t, s, once)
	settle(t, s, once, Delivered)
	s.Release(v.Lease)
	r.Stop()
	r.Start()
	if v := admitOne(t, s, once); v.Reason != Once {
		t.Errorf("once after a restart of Redis with AOF: %q", v.Reason)
	}
}

// TestRedisLeaseRenewed: a lease held past its TTL is renewed, by the
// server's clock, while its process runs, and ends when released.
func TestRedisLeaseRenewed(t *testing.T) {
	addr := statetest.StartRedis(t)
	s, err := OpenRedis(context.Background(), RedisOptions{Client: redis.NewClient(&redis.Options{Addr: addr}),
		LeaseTTL: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v := admitOne(t, s, Claim{ID: "1", Action: "a", Key: "k", Max: 1})
	time.Sleep(time.Second) // three TTLs
	if w := admitOne(t, s, Claim{ID: "2", Action: "a", Key: "k", Max: 1}); w.Reason != Max {
		t.Errorf("a lease held past its TTL: %q, want %q", w.Reason, Max)
	}
	s.Release(v.Lease)
	if w := admitOne(t, s, Claim{ID: "3", Action: "a", Key: "k", Max: 1}); w.Reason != "" {
		t.Errorf("after the release: %q", w.Reason)
	}
}
