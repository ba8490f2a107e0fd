package history

import (
	"slices"
	"sync"
)

// Counts are what became of one command's or route's actions since amx
// started.
type Counts struct {
	Name    string `json:"name"`
	Started int64  `json:"started"`
	Failed  int64  `json:"failed"`
	// LuaErrors counts the route's script failing for an alert.
	LuaErrors int64 `json:"lua_errors"`
	// Skipped counts, by reason, the alerts or actions left out: no
	// match, skip(), and admission's refusals.
	Skipped map[string]int64 `json:"skipped"`
}

type tally struct {
	mu sync.Mutex
	m  map[string]*Counts
}

func (t *tally) get(name string) *Counts {
	if t.m == nil {
		t.m = make(map[string]*Counts)
	}
	c := t.m[name]
	if c == nil {
		c = &Counts{Name: name, Skipped: make(map[string]int64)}
		t.m[name] = c
	}
	return c
}

// count changes the counts of a command or route.
func (t *tally) count(name string, f func(*Counts)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f(t.get(name))
}

// CountLuaError counts a route's script failing for an alert.
func (h *History) CountLuaError(route string) {
	h.tally.count(route, func(c *Counts) { c.LuaErrors++ })
}

// CountSkip counts n skips of a command or route for a reason: those
// decided before admission (no match, skip()), which are not runs.
// Admission's refusals are counted by Skip.
func (h *History) CountSkip(name, reason string, n int) {
	h.tally.count(name, func(c *Counts) { c.Skipped[reason] += int64(n) })
}

// Counts returns the counts of the names given, in their order, then of
// any other name counted since start (a command or route a reload
// removed), by name.
func (h *History) Counts(names []string) []Counts {
	t := &h.tally
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Counts, 0, max(len(names), len(t.m)))
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if seen[n] {
			continue
		}
		seen[n] = true
		out = append(out, t.get(n).copy())
	}
	var others []string
	for n := range t.m {
		if !seen[n] {
			others = append(others, n)
		}
	}
	slices.Sort(others)
	for _, n := range others {
		out = append(out, t.m[n].copy())
	}
	return out
}

func (c *Counts) copy() Counts {
	out := *c
	out.Skipped = make(map[string]int64, len(c.Skipped))
	for r, n := range c.Skipped {
		out.Skipped[r] = n
	}
	return out
}
