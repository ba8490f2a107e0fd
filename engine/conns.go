package engine

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// connLimit caps the connections a listener keeps open, so that clients
// that open many and send little cannot take every file descriptor. At the
// cap, a new connection takes the place of the one that has waited longest
// without a request in progress (kept alive after an answer, or opened and
// silent): whoever has a request to send gets in, and a notification being
// handled is never cut. Only when every connection is busy does Accept
// wait for one to close.
type connLimit struct {
	net.Listener
	limit int

	mu     sync.Mutex
	freed  *sync.Cond // signalled when a connection closes or goes idle
	open   map[*limitedConn]struct{}
	closed bool
}

func newConnLimit(ln net.Listener, limit int) *connLimit {
	l := &connLimit{Listener: ln, limit: limit, open: make(map[*limitedConn]struct{})}
	l.freed = sync.NewCond(&l.mu)
	return l
}

// Accept returns the next connection once there is room for it.
func (l *connLimit) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	lc := &limitedConn{Conn: c, l: l}
	lc.waiting.Store(time.Now().UnixNano())
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.open) >= l.limit {
		if l.closed {
			c.Close()
			return nil, net.ErrClosed
		}
		if v := l.longestWaiting(); v != nil {
			delete(l.open, v)
			v.Conn.Close() // its server goroutine sees the close and ends
			continue
		}
		l.freed.Wait()
	}
	l.open[lc] = struct{}{}
	return lc, nil
}

// Close stops accepting, also in an Accept that waits for room.
func (l *connLimit) Close() error {
	l.mu.Lock()
	l.closed = true
	l.freed.Broadcast()
	l.mu.Unlock()
	return l.Listener.Close()
}

// longestWaiting is the open connection without a request in progress
// that has waited longest, or nil.
func (l *connLimit) longestWaiting() *limitedConn {
	var oldest *limitedConn
	var since int64
	for c := range l.open {
		if w := c.waiting.Load(); w != 0 && (oldest == nil || w < since) {
			oldest, since = c, w
		}
	}
	return oldest
}

// connState is the server's ConnState hook: it tells the limit which
// connections have a request in progress.
func (l *connLimit) connState(c net.Conn, s http.ConnState) {
	if nc, ok := c.(interface{ NetConn() net.Conn }); ok { // TLS
		c = nc.NetConn()
	}
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	switch s {
	case http.StateActive:
		lc.waiting.Store(0)
	case http.StateIdle:
		lc.waiting.Store(time.Now().UnixNano())
		// An Accept waiting for room may now take this one's place.
		l.mu.Lock()
		l.freed.Signal()
		l.mu.Unlock()
	}
}

// Len is the number of open connections.
func (l *connLimit) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.open)
}

// limitedConn is a connection counted by a connLimit.
type limitedConn struct {
	net.Conn
	l *connLimit
	// waiting is when the connection last began to wait for a request, in
	// Unix nanoseconds; zero while a request is in progress.
	waiting atomic.Int64
	once    sync.Once
}

func (c *limitedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.open, c)
		c.l.freed.Signal()
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
