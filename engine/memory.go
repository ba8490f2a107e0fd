package engine

import (
	"slices"
	"sync"
	"time"
)

// Alertmanager delivers at least once: it re-sends a notification after a
// failed or slow answer, and two replicas may both send it. memory turns
// that into "at most once" where it matters: an action that succeeded for
// an occurrence (see Plan.Occurrences) is not run again for the same
// occurrence within the window, and a `once` action never again while amx
// runs. It lives in memory only: a restart forgets it.
type memory struct {
	window time.Duration // zero remembers nothing, except once
	max    int           // entries kept at most; the oldest go first

	mu      sync.Mutex
	entries map[string]entry
	queue   []queued // entries in the order they were made, for expiry
	// firingOnce indexes once occurrences of firing alerts by fingerprint,
	// to forget them when the alert resolves.
	firingOnce map[string][]string
}

type entry struct {
	at      time.Time
	pending bool // running now: a concurrent copy is a duplicate too
	once    bool // kept past the window
}

type queued struct {
	key string
	at  time.Time
}

// defaultMemoryMax bounds what memory holds: about 200 bytes an entry.
const defaultMemoryMax = 100_000

// claim reports whether the occurrence may run now, and if so marks it
// running, so that a copy of the notification arriving meanwhile is a
// duplicate. A zero occurrence is never remembered.
func (m *memory) claim(o Occurrence, now time.Time) bool {
	if o.Key == "" {
		return true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.window <= 0 && !o.Once {
		return true
	}
	if e, ok := m.entries[o.Key]; ok && (e.pending || e.once || now.Sub(e.at) < m.window) {
		return false
	}
	m.put(o.Key, entry{at: now, pending: true}, now)
	return true
}

// settle records how a claimed occurrence went: a success is remembered
// (for good when it is a once occurrence), a failure forgotten so that a
// retry runs it.
func (m *memory) settle(o Occurrence, ok bool, now time.Time) {
	if o.Key == "" {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !ok || (m.window <= 0 && !o.Once) {
		delete(m.entries, o.Key)
		return
	}
	m.put(o.Key, entry{at: now, once: o.Once}, now)
	if o.Once && o.Firing {
		if m.firingOnce == nil {
			m.firingOnce = make(map[string][]string)
		}
		m.firingOnce[o.Fingerprint] = append(m.firingOnce[o.Fingerprint], o.Key)
	}
}

// resolved forgets the firing once occurrences of the fingerprints: a
// resolved alert's next firing is a new occurrence anyway (a new
// startsAt), so they need not be kept.
func (m *memory) resolved(fingerprints []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, fp := range fingerprints {
		for _, key := range m.firingOnce[fp] {
			delete(m.entries, key)
		}
		delete(m.firingOnce, fp)
	}
}

func (m *memory) put(key string, e entry, now time.Time) {
	if m.entries == nil {
		m.entries = make(map[string]entry)
	}
	m.entries[key] = e
	m.queue = append(m.queue, queued{key, e.at})
	// Expire from the front: entries past the window, and the oldest
	// while there are too many. A queued entry whose key was put again
	// later is stale and only dropped from the queue.
	if len(m.queue) > 2*m.max+64 {
		m.compact()
	}
	for len(m.queue) > 0 {
		q := m.queue[0]
		cur, ok := m.entries[q.key]
		switch {
		case !ok || !cur.at.Equal(q.at):
		case len(m.entries) > m.max:
			delete(m.entries, q.key)
		case !cur.pending && !cur.once && now.Sub(cur.at) >= m.window:
			delete(m.entries, q.key)
		default:
			return
		}
		m.queue = m.queue[1:]
	}
}

// compact rebuilds the queue from the entries, oldest first, dropping the
// stale ones that puts of the same key left behind.
func (m *memory) compact() {
	m.queue = m.queue[:0:0]
	for key, e := range m.entries {
		m.queue = append(m.queue, queued{key, e.at})
	}
	slices.SortFunc(m.queue, func(a, b queued) int { return a.at.Compare(b.at) })
}

// setWindow changes how long successes are remembered, for a reload.
func (m *memory) setWindow(d time.Duration) {
	m.mu.Lock()
	m.window = d
	m.mu.Unlock()
}
