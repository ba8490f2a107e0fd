package engine

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/amx-dev/amx/runner/runnertest"
)

// TestConnLimit: at the cap, a new connection takes the place of the one
// waiting longest for a request; a connection with a request in progress
// keeps its place, and when all are busy the next waits for one to end.
func TestConnLimit(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	limit := newConnLimit(ln, 3)
	release := make(chan struct{})
	srv := &http.Server{
		ConnState: limit.connState,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/block" {
				<-release
			}
			io.WriteString(w, "ok")
		}),
	}
	go srv.Serve(limit)
	t.Cleanup(func() { srv.Close() })
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	get := func(c net.Conn, path string) <-chan int {
		codes := make(chan int, 1)
		io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: amx\r\n\r\n")
		go func() {
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
		return codes
	}

	// busy counts the open connections with a request in progress.
	busy := func() int {
		limit.mu.Lock()
		defer limit.mu.Unlock()
		n := 0
		for c := range limit.open {
			if c.waiting.Load() == 0 {
				n++
			}
		}
		return n
	}

	// Three silent connections fill the listener; a fourth with a request
	// is answered, in place of the first.
	silent := []net.Conn{dial(), dial(), dial()}
	runnertest.Eventually(t, "3 open", func() bool { return limit.Len() == 3 })
	if code := <-get(dial(), "/"); code != 200 {
		t.Fatalf("a request at the cap: %d", code)
	}
	if _, err := silent[0].Read(make([]byte, 1)); err == nil {
		t.Error("the connection waiting longest was not closed")
	}
	if n := limit.Len(); n > 3 {
		t.Errorf("%d open, want at most 3", n)
	}
	// The server marks the answered connection idle only after the client
	// can read the answer. Until then it counts as busy, and a connection
	// accepted meanwhile would have waited longer than it and be the one
	// replaced below.
	runnertest.Eventually(t, "the answered connection idle", func() bool { return busy() == 0 })

	// Three requests in progress: they keep their places, and a fourth
	// connection waits until one of them ends.
	var blocked []<-chan int
	for range 3 {
		blocked = append(blocked, get(dial(), "/block"))
	}
	runnertest.Eventually(t, "3 busy", func() bool { return busy() == 3 })
	last := get(dial(), "/")
	select {
	case code := <-last:
		t.Fatalf("a fourth connection was served (%d) while three requests were in progress", code)
	default:
	}
	close(release)
	for _, c := range blocked {
		if code := <-c; code != 200 {
			t.Errorf("a request in progress got %d", code)
		}
	}
	if code := <-last; code != 200 {
		t.Errorf("the waiting connection got %d", code)
	}
}
