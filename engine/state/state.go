// Package state is amx's delivery state: what ran for which alert
// occurrence and how it went, the once marks, the tombstones of resolved
// occurrences, cooldowns, rate windows, the leases of live processes that
// max counts, and the key-values of scripts. Admission in engine decides
// with it; the store only implements the operations, each atomic.
//
// Two backends share one implementation: memory (lost on restart) and bolt
// (the same, with every change written to a go.etcd.io/bbolt file before
// the admission that made it returns, so that a claim is durable before its
// process starts).
package state

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"time"
)

// Reasons an admission refuses a claim, as am_executor_skipped_total labels
// them. Pending is not a skip: the claim is held by a delivery whose answer
// is not known yet, and Await waits for it.
const (
	Duplicate = "duplicate" // already ran for this occurrence
	Once      = "once"      // a once action already ran for this occurrence
	Resolved  = "resolved"  // a late firing copy of an occurrence that resolved
	Max       = "fingerover"
	Cooldown  = "cooldown"
	Rate      = "rate"
	Pending   = "pending"
)

// Outcomes a claim settles to.
const (
	Failed    = "failed"    // the action failed: a retry runs it again
	Succeeded = "succeeded" // it succeeded, but the answer did not reach Alertmanager as a success
	Delivered = "delivered" // it succeeded and Alertmanager got a 200
)

// Claim asks whether an action may start for an occurrence.
type Claim struct {
	// ID is the action and the occurrence (see Join): a re-sent
	// notification asks again with the same ID. Empty: there is no
	// occurrence to remember, and every copy runs.
	ID   string
	Once bool
	// Occurrence is the alert (fingerprint and startsAt) the action is
	// bound to; a Firing claim of an occurrence whose resolve was seen is
	// refused.
	Occurrence string
	Firing     bool
	// Action is what rate counts; Action and Key what max and cooldown
	// count.
	Action, Key string
	Max         int
	Cooldown    time.Duration
	Rate        RateLimit
	// Window is how long a delivered success makes a copy a duplicate.
	Window time.Duration
}

// RateLimit is at most N starts Per window; a zero RateLimit is no limit.
type RateLimit struct {
	N   int
	Per time.Duration
}

// Verdict is the store's answer to one Claim.
type Verdict struct {
	// Reason is empty when the action may start, else why not.
	Reason string
	// Lease is held by an admitted action until Release.
	Lease Lease
	// Stale: the claim found had been left pending by an earlier run of
	// amx that ended before settling it.
	Stale bool
}

// Lease is a live process counted against max.
type Lease struct {
	key    string // the action and key it counts for
	member string // which of them, where a backend tells them apart (Redis)
}

// Settlement is how a claim went. A Copy settlement is a delivery's word
// on a claim another delivery made and settled: it only turns a success
// into a delivered one. Release, when set, is the lease of the settled
// action, whose process ended before its delivery's answer was written:
// given back in the same call.
type Settlement struct {
	ID      string
	Once    bool
	Outcome string
	Window  time.Duration
	Copy    bool
	Release Lease
}

// Write is one change a script asked for: set (Value), incr (by Value.Num)
// or del, in a route's namespace.
type Write struct {
	Op    string // "set", "incr", "del"
	Key   string
	Value Value
	TTL   time.Duration
}

// Writes are what one script invocation asked to change. They are applied
// once per ID (a route and an occurrence): a re-sent notification applies
// nothing again.
type Writes struct {
	ID        string
	Namespace string
	Ops       []Write
}

// Batch is what one notification asks of the store, in one commit.
type Batch struct {
	// Tombstones are the occurrences that resolved.
	Tombstones []string
	Claims     []Claim
	Writes     []Writes
}

// Admission is the store's answer to a Batch.
type Admission struct {
	Verdicts []Verdict // one per claim
	// Refused are the script writes not applied, each with why.
	Refused []string
}

// Value is a script's value: a string or a number.
type Value struct {
	Str   string  `json:"s,omitempty"`
	Num   float64 `json:"n,omitempty"`
	IsNum bool    `json:"num,omitempty"`
}

// Entry is one thing the store remembers, as operators see it.
type Entry struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind"`
	Expires time.Time `json:"expires"`
	// Claims: their state, since when, and which run of amx made them.
	State string    `json:"state,omitempty"`
	At    time.Time `json:"at,omitzero"`
	Owner string    `json:"owner,omitempty"`
	Once  bool      `json:"once,omitempty"`
	// Cooldowns: the claim that started it.
	Claim string `json:"claim,omitempty"`
	// Rate windows: the starts within it.
	Starts []time.Time `json:"starts,omitempty"`
	// Script values, and live leases.
	Value *Value `json:"value,omitempty"`
	Count int    `json:"count,omitempty"`
}

// Kinds of Entry; an entry's ID starts with its kind and a slash.
const (
	KindClaim     = "claim"
	KindTombstone = "tombstone"
	KindCooldown  = "cooldown"
	KindRate      = "rate"
	KindValue     = "value"
	KindApplied   = "applied" // a script invocation's writes were applied
	KindLease     = "lease"
)

// Store is the delivery state. Its methods are safe for concurrent use.
type Store interface {
	// Admit decides every claim of a batch, records the tombstones and
	// applies the script writes, atomically. What lets a process start
	// is durable when it returns.
	Admit(ctx context.Context, b Batch) (Admission, error)
	// Await waits until a pending claim is settled and returns its
	// outcome.
	Await(ctx context.Context, id string) (string, error)
	// Settle records how claims went.
	Settle(ctx context.Context, s []Settlement) error
	// Release ends a lease: its process has ended, or never started.
	Release(l Lease)
	// Get reads a script's value.
	Get(ctx context.Context, namespace, key string) (Value, bool, error)
	// List returns the entries whose ID starts with prefix; Delete removes
	// them and returns how many it removed. Leases are listed but not
	// deleted: they end with their processes.
	List(ctx context.Context, prefix string) ([]Entry, error)
	Delete(ctx context.Context, prefix string) (int, error)
	// Health is nil while the store can record.
	Health() error
	// SetRetention changes how long outcomes, tombstones and once marks are
	// kept, for a reload.
	SetRetention(d time.Duration)
	// OnEvict sets what is told the kind of every entry dropped before
	// it expired because the store was full.
	OnEvict(f func(kind string))
	// Broadcast tells the other replicas sharing the store that alerts
	// resolved, so that they signal the processes they run for them;
	// OnResolve sets what is told of the other replicas' resolves. With
	// one amx (memory, bolt) both do nothing.
	Broadcast(ctx context.Context, fingerprints []string) error
	OnResolve(f func(fingerprints []string))
	// Tombstoned returns those of the occurrences whose resolve was seen:
	// the backstop for a broadcast a replica missed. Shared reports
	// whether other replicas may share the store, so that it is needed.
	Tombstoned(ctx context.Context, occurrences []string) ([]string, error)
	Shared() bool
	// String names the backend, for the startup line.
	String() string
	Close() error
}

// ID is the ID of an entry of a kind, keyed by parts, each escaped (see
// Join).
func ID(kind string, parts ...string) string {
	return kind + "/" + Join(parts...)
}

// Join joins the parts of a key with slashes, each part escaped, so that
// keys read well and never collide.
func Join(parts ...string) string {
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(url.PathEscape(p))
	}
	return b.String()
}

// Bounds on what scripts store.
const (
	MaxKeyBytes     = 256
	MaxValueBytes   = 4096
	MaxKeysPerRoute = 10_000
)

// ErrClosed is the error of operations on a closed store.
var ErrClosed = errors.New("state store closed")
