package engine

import (
	"errors"
	"io"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// firstRead is the most a body's buffer holds before data arrives: a
// client's announced length is a claim, not bytes, so the buffer grows with
// what has come instead of being allocated on the claim.
const firstRead = 64 << 10

// errBodiesFull is readBody's answer when the request bodies in flight
// already hold the bytes max_inflight_body_bytes allows.
var errBodiesFull = errors.New("request bodies in flight exceed max_inflight_body_bytes; retry later")

// bodyBudget bounds the bytes every request body in flight holds together,
// so that many clients each sending a little of a large body cannot make amx
// hold more memory than the operator allowed.
type bodyBudget struct {
	used  atomic.Int64
	limit atomic.Int64
}

// take reserves n bytes, or reports that they would pass the limit.
func (b *bodyBudget) take(n int64) bool {
	for {
		used := b.used.Load()
		if used+n > b.limit.Load() {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

// give returns n reserved bytes.
func (b *bodyBudget) give(n int64) { b.used.Add(-n) }

// readBody reads a request body of at most limit bytes. Its buffer grows as
// data arrives, doubling up to the announced length (so a body that comes
// whole is copied a few times at most), and each growth is reserved from
// budget first. It returns the body and the bytes reserved for it, which
// the caller gives back when it no longer holds the body, also on error. A
// body announced larger than limit is refused unread.
func readBody(r io.Reader, length, limit int64, budget *bodyBudget) (body []byte, held int64, err error) {
	if length > limit {
		return nil, 0, &http.MaxBytesError{Limit: limit}
	}
	// Unknown length: start small, and MaxBytesReader stops the read past
	// the limit.
	end, first := limit+1, int64(512)
	if length > 0 {
		end, first = length, firstRead
	}
	var buf []byte
	for {
		if len(buf) == cap(buf) {
			size := min(end, max(first, 2*int64(cap(buf))))
			if size <= int64(cap(buf)) {
				// The announced length has arrived: a body longer than it
				// is the server's to cut, as net/http does.
				return buf, held, nil
			}
			if !budget.take(size - int64(cap(buf))) {
				return nil, held, errBodiesFull
			}
			held = size
			grown := make([]byte, len(buf), size)
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		switch {
		case err == io.EOF:
			if length > 0 && int64(len(buf)) < length {
				return nil, held, io.ErrUnexpectedEOF
			}
			return buf, held, nil
		case err != nil:
			return nil, held, err
		}
	}
}

// Large bodies: while one is being handled, the collector runs at
// largeGCPercent, so that the heap peaks near what is live instead of at
// twice it. A 50,000-alert group is a 50 MB body and a message as large,
// and the Lua route that runs for each alert makes garbage enough to reach
// the default goal: 240 MB at the default, 150 MB at 25, for a little more
// collector CPU during those requests only.
const (
	largeBody      = 8 << 20
	largeGCPercent = 25
)

// gcPace lowers the collector's goal while large bodies are handled.
type gcPace struct {
	mu    sync.Mutex
	large int // large bodies being handled
	base  int // the GC percent to go back to
}

// enter notes a large body being handled; the caller calls leave when it
// no longer holds it.
func (g *gcPace) enter() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.large++; g.large == 1 {
		g.base = debug.SetGCPercent(largeGCPercent)
		if g.base < largeGCPercent {
			// GOGC asked for less already, or for off (-1): the
			// operator's choice stands.
			debug.SetGCPercent(g.base)
		}
	}
}

func (g *gcPace) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.large--; g.large == 0 {
		debug.SetGCPercent(g.base)
		// Collect what the last one left now, so that the next goal is
		// set from what is live; not on the answer's way out.
		go runtime.GC()
	}
}
