package state

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a store.
type Options struct {
	// Retention is how long outcomes not delivered, tombstones and once
	// marks are kept. Default 24h.
	Retention time.Duration
	// MaxEntries bounds what the store holds. Past it, applied-write
	// marks and ordinary outcomes are dropped first; dropping anything
	// else (a once mark, a cooldown) is logged and counted. Default
	// 1,000,000 (about 300 MB at worst).
	MaxEntries int
	Log        *slog.Logger
	// Now is the clock; time.Now by default.
	Now func() time.Time
}

// Defaults of Options.
const (
	DefaultRetention  = 24 * time.Hour
	DefaultMaxEntries = 1_000_000
)

func (o *Options) defaults() {
	if o.Retention <= 0 {
		o.Retention = DefaultRetention
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// change is one entry written (or removed, when e is nil), in the order the
// core made it.
type change struct {
	id string
	e  *Entry
}

// core is the state both backends keep in memory: every decision is made
// here, under one lock, and handed to a journal (bolt's, or none) as the
// changes it made.
type core struct {
	opts  Options
	owner string // this run of amx, to tell claims left by an earlier one
	// onEvict is told the kind of every entry dropped by MaxEntries
	// before it expired.
	onEvict atomic.Pointer[func(kind string)]

	mu        sync.Mutex
	retention time.Duration
	entries   map[string]*Entry
	// leases counts live processes per action and key; waiters are the
	// claims pending in this run, closed when settled.
	leases    map[string]int
	waiters   map[string]*waiter
	perNS     map[string]int // script keys per namespace
	lastSweep time.Time
	// journal takes the changes of every operation, under the lock so
	// that it gets them in the order they were made, and returns the
	// sequence number to wait for; urgent when a caller waits for it. Nil
	// keeps them in memory only.
	journal func(ch []change, urgent bool) uint64
}

type waiter struct {
	done    chan struct{}
	outcome string
}

func newCore(opts Options) *core {
	opts.defaults()
	var b [8]byte
	rand.Read(b[:])
	return &core{
		opts:      opts,
		owner:     hex.EncodeToString(b[:]),
		retention: opts.Retention,
		entries:   make(map[string]*Entry),
		leases:    make(map[string]int),
		waiters:   make(map[string]*waiter),
		perNS:     make(map[string]int),
		lastSweep: opts.Now(),
	}
}

// load adds an entry read back from disk.
func (c *core) load(id string, e *Entry) {
	c.entries[id] = e
	if e.Kind == KindValue {
		c.perNS[namespaceOf(id)]++
	}
}

func (c *core) put(ch *[]change, id string, e *Entry) {
	if _, ok := c.entries[id]; !ok && e.Kind == KindValue {
		c.perNS[namespaceOf(id)]++
	}
	c.entries[id] = e
	c.record(ch, id, e)
}

// record adds a change for the journal: the entry id now holds, nil when
// removed. A store in memory only has no journal and records nothing.
func (c *core) record(ch *[]change, id string, e *Entry) {
	if c.journal == nil {
		return
	}
	if e != nil {
		// A copy: the core may change e again before the journal
		// writes it.
		cp := *e
		e = &cp
	}
	*ch = append(*ch, change{id, e})
}

func (c *core) remove(ch *[]change, id string) {
	e, ok := c.entries[id]
	if !ok {
		return
	}
	if e.Kind == KindValue {
		if ns := namespaceOf(id); c.perNS[ns] <= 1 {
			delete(c.perNS, ns)
		} else {
			c.perNS[ns]--
		}
	}
	delete(c.entries, id)
	c.record(ch, id, nil)
}

// live returns the entry with the id unless it expired.
func (c *core) live(id string, now time.Time) *Entry {
	e := c.entries[id]
	if e == nil || !now.Before(e.Expires) {
		return nil
	}
	return e
}

// emit hands the changes to the journal, urgent when the caller waits for
// them to be durable, and returns the sequence number to wait for: zero
// when there is nothing to wait for.
func (c *core) emit(ch []change, urgent bool) uint64 {
	if c.journal == nil || len(ch) == 0 {
		return 0
	}
	seq := c.journal(ch, urgent)
	if !urgent {
		return 0
	}
	return seq
}

// admit decides a batch (see Store.Admit) and returns the journal's
// sequence number of its changes.
func (c *core) admit(b Batch) (Admission, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.opts.Now()
	var ch []change
	for _, occ := range b.Tombstones {
		c.put(&ch, KindTombstone+"/"+occ, &Entry{Kind: KindTombstone, Expires: now.Add(c.retention)})
	}
	adm := Admission{Verdicts: make([]Verdict, len(b.Claims))}
	durable, starts := false, false
	for i := range b.Claims {
		cl := &b.Claims[i]
		adm.Verdicts[i] = c.claim(&ch, cl, now)
		starts = starts || adm.Verdicts[i].Reason == ""
		durable = durable || adm.Verdicts[i].Reason == "" && cl.mustPersist()
	}
	// What scripts wrote is on disk before a process they asked for
	// starts: a reboot counter must not be lost to a crash while the
	// reboot goes on.
	durable = durable || starts && len(b.Writes) > 0
	for i := range b.Writes {
		adm.Refused = append(adm.Refused, c.apply(&ch, &b.Writes[i], now)...)
	}
	c.bound(&ch, now)
	// A start that a crash must not forget is on disk before the process
	// starts; the rest (tombstones, the script values of a notification
	// that starts nothing, renewed once marks) follows within the
	// journal's lazy delay.
	return adm, c.emit(ch, durable)
}

func (c *core) claim(ch *[]change, cl *Claim, now time.Time) Verdict {
	if cl.Firing && cl.Occurrence != "" && c.live(KindTombstone+"/"+cl.Occurrence, now) != nil {
		return Verdict{Reason: Resolved}
	}
	id := KindClaim + "/" + cl.ID
	stale := false
	if e := c.live(id, now); e != nil && cl.ID != "" {
		switch {
		case e.State == Pending && e.Owner == c.owner:
			return Verdict{Reason: Pending}
		case e.State == Pending && cl.Once:
			// An earlier amx claimed it and ended before settling: it
			// may have run, and a once action must not run twice.
			e.Expires = now.Add(c.retention)
			c.put(ch, id, e)
			return Verdict{Reason: Once, Stale: true}
		case e.State == Pending:
			stale = true // its answer never reached Alertmanager: run again
		case e.State == Succeeded || (e.State == Delivered && cl.Once):
			if cl.Once {
				e.Expires = now.Add(c.retention) // kept while the alert fires
				c.put(ch, id, e)
				return Verdict{Reason: Once}
			}
			return Verdict{Reason: Duplicate}
		case e.State == Delivered && now.Sub(e.At) < cl.Window:
			return Verdict{Reason: Duplicate}
		}
	}
	leaseID := ID(KindLease, cl.Action, cl.Key)
	if cl.Max > 0 && c.leases[leaseID] >= cl.Max {
		return Verdict{Reason: Max, Stale: stale}
	}
	cooldownID := ID(KindCooldown, cl.Action, cl.Key)
	if cl.Cooldown > 0 {
		if e := c.live(cooldownID, now); e != nil && e.Claim != cl.ID {
			return Verdict{Reason: Cooldown, Stale: stale}
		}
	}
	rateID := ID(KindRate, cl.Action)
	var starts []time.Time
	if cl.Rate.N > 0 {
		if e := c.live(rateID, now); e != nil {
			for _, t := range e.Starts {
				if now.Sub(t) < cl.Rate.Per {
					starts = append(starts, t)
				}
			}
		}
		if len(starts) >= cl.Rate.N {
			return Verdict{Reason: Rate, Stale: stale}
		}
	}
	// Admitted: take everything at once.
	if cl.ID != "" {
		c.put(ch, id, &Entry{Kind: KindClaim, State: Pending, At: now, Owner: c.owner, Once: cl.Once,
			Expires: now.Add(c.retention)})
		c.waiters[id] = &waiter{done: make(chan struct{})}
	}
	if cl.Cooldown > 0 {
		c.put(ch, cooldownID, &Entry{Kind: KindCooldown, Claim: cl.ID, At: now, Expires: now.Add(cl.Cooldown)})
	}
	if cl.Rate.N > 0 {
		starts = append(starts, now)
		c.put(ch, rateID, &Entry{Kind: KindRate, Starts: starts, Expires: now.Add(cl.Rate.Per)})
	}
	c.leases[leaseID]++
	return Verdict{Lease: Lease{key: leaseID}, Stale: stale}
}

// mustPersist reports whether the claim must be on disk before its
// process starts: a once action, or one that takes a cooldown or a rate
// slot, must count as started after a crash. Any other claim left by a
// crash lets the action run again, as if it had never been made, so
// writing it first would change nothing.
func (cl *Claim) mustPersist() bool {
	return cl.Once || cl.Cooldown > 0 || cl.Rate.N > 0
}

// apply applies one invocation's writes unless they were applied before,
// and returns those refused by the bounds.
func (c *core) apply(ch *[]change, w *Writes, now time.Time) (refused []string) {
	applied := KindApplied + "/" + w.ID
	if c.live(applied, now) != nil {
		return nil
	}
	c.put(ch, applied, &Entry{Kind: KindApplied, Expires: now.Add(c.retention)})
	for _, op := range w.Ops {
		id := ID(KindValue, w.Namespace, op.Key)
		e := c.live(id, now)
		if op.Op == "del" {
			c.remove(ch, id)
			continue
		}
		if e == nil && c.perNS[w.Namespace] >= MaxKeysPerRoute {
			refused = append(refused, fmt.Sprintf("%s: %s: more than %d keys", w.Namespace, op.Key, MaxKeysPerRoute))
			continue
		}
		expires := time.Time{}
		if op.TTL > 0 {
			expires = now.Add(op.TTL)
		}
		switch op.Op {
		case "set":
			v := op.Value
			// Kept past the notification, whose body the string may
			// share (see engine.Decode).
			v.Str = strings.Clone(v.Str)
			c.put(ch, id, &Entry{Kind: KindValue, Value: &v, At: now, Expires: orForever(expires)})
		case "incr":
			v := Value{IsNum: true, Num: op.Value.Num}
			if e != nil && e.Value != nil {
				if !e.Value.IsNum {
					refused = append(refused, fmt.Sprintf("%s: %s: incr of a string", w.Namespace, op.Key))
					continue
				}
				v.Num += e.Value.Num
				expires = e.Expires // the window runs from the first increment
			}
			c.put(ch, id, &Entry{Kind: KindValue, Value: &v, At: now, Expires: orForever(expires)})
		}
	}
	return refused
}

// forever is the expiry of values without a TTL.
var forever = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

func orForever(t time.Time) time.Time {
	if t.IsZero() {
		return forever
	}
	return t
}

// namespaceOf is the namespace of a value's ID: value/<ns>/<key>.
func namespaceOf(id string) string {
	rest := strings.TrimPrefix(id, KindValue+"/")
	ns, _, _ := strings.Cut(rest, "/")
	return ns
}

func (c *core) settle(s []Settlement) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.opts.Now()
	var ch []change
	for _, st := range s {
		c.releaseLocked(st.Release)
		if st.ID == "" {
			continue
		}
		id := KindClaim + "/" + st.ID
		if w := c.waiters[id]; w != nil && !st.Copy {
			w.outcome = st.Outcome
			close(w.done)
			delete(c.waiters, id)
		}
		e := c.entries[id]
		if e == nil {
			continue
		}
		switch {
		case st.Copy && e.State != Succeeded:
			// A copy answered: the window runs from the first answer,
			// and a claim still pending is its own delivery's to settle.
		case st.Outcome == Failed:
			c.remove(&ch, id)
		case st.Outcome == Delivered && !st.Once && st.Window <= 0:
			c.remove(&ch, id) // nothing to remember: every copy runs
		case st.Outcome == Delivered && !st.Once:
			c.put(&ch, id, &Entry{Kind: KindClaim, State: Delivered, At: now, Expires: now.Add(st.Window)})
		default:
			c.put(&ch, id, &Entry{Kind: KindClaim, State: st.Outcome, At: now, Once: st.Once, Expires: now.Add(c.retention)})
		}
	}
	return c.emit(ch, false)
}

func (c *core) await(ctx context.Context, id string) (string, error) {
	c.mu.Lock()
	w := c.waiters[KindClaim+"/"+id]
	e := c.entries[KindClaim+"/"+id]
	c.mu.Unlock()
	if w == nil {
		if e == nil {
			return Failed, nil
		}
		return e.State, nil
	}
	select {
	case <-w.done:
		return w.outcome, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (c *core) tombstoned(occurrences []string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.opts.Now()
	var out []string
	for _, occ := range occurrences {
		if c.live(KindTombstone+"/"+occ, now) != nil {
			out = append(out, occ)
		}
	}
	return out
}

func (c *core) release(l Lease) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.releaseLocked(l)
}

func (c *core) releaseLocked(l Lease) {
	if l.key == "" {
		return
	}
	if c.leases[l.key]--; c.leases[l.key] <= 0 {
		delete(c.leases, l.key)
	}
}

func (c *core) get(namespace, key string) (Value, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.live(ID(KindValue, namespace, key), c.opts.Now())
	if e == nil || e.Value == nil {
		return Value{}, false
	}
	return *e.Value, true
}

func (c *core) list(prefix string) []Entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.opts.Now()
	var out []Entry
	for id, e := range c.entries {
		if strings.HasPrefix(id, prefix) && now.Before(e.Expires) {
			x := *e
			x.ID = id
			out = append(out, x)
		}
	}
	for id, n := range c.leases {
		if strings.HasPrefix(id, prefix) {
			out = append(out, Entry{ID: id, Kind: KindLease, Count: n})
		}
	}
	return out
}

func (c *core) delete(prefix string) (int, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ch []change
	n := 0
	for id := range c.entries {
		if strings.HasPrefix(id, prefix) {
			c.remove(&ch, id)
			n++
		}
	}
	return n, c.emit(ch, true)
}

// sweep removes what expired; at most once a minute unless forced.
func (c *core) sweep(now time.Time, force bool) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ch []change
	c.sweepLocked(&ch, now, force)
	return c.emit(ch, false)
}

func (c *core) sweepLocked(ch *[]change, now time.Time, force bool) {
	if !force && now.Sub(c.lastSweep) < time.Minute {
		return
	}
	c.lastSweep = now
	for id, e := range c.entries {
		if !now.Before(e.Expires) && c.waiters[id] == nil {
			c.remove(ch, id)
		}
	}
}

// bound keeps the entries under MaxEntries: expired ones go first, then
// marks of applied writes and outcomes that are not once marks, and only
// then, with a warning, anything else but a pending claim.
func (c *core) bound(ch *[]change, now time.Time) {
	max := c.opts.MaxEntries
	if len(c.entries) <= max {
		return
	}
	c.sweepLocked(ch, now, true)
	// Drop a tenth more than needed, so that the next entries do not
	// each pay for a scan.
	target := max - max/10
	for pass := 0; pass < 2 && len(c.entries) > target; pass++ {
		for id, e := range c.entries {
			if len(c.entries) <= target {
				break
			}
			ordinary := e.Kind == KindApplied || (e.Kind == KindClaim && !e.Once && e.State != Pending)
			if e.State == Pending || (pass == 0 && !ordinary) {
				continue
			}
			if !ordinary {
				c.opts.Log.Warn("state store full: dropping an entry before it expired", "id", id, "kind", e.Kind,
					"max_entries", max)
			}
			if f := c.onEvict.Load(); f != nil {
				(*f)(e.Kind)
			}
			c.remove(ch, id)
		}
	}
}

func (c *core) setRetention(d time.Duration) {
	if d <= 0 {
		d = DefaultRetention
	}
	c.mu.Lock()
	c.retention = d
	c.mu.Unlock()
}
