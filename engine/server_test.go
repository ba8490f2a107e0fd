package engine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amx-dev/amx/rules"
)

// TestSlowClients: a client that stalls in its headers or its body is cut
// off after the limit, answers nothing that runs, and does not hold up
// anyone else; oversized headers are refused.
func TestSlowClients(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	src := rules.Source{File: writeTestFile(t, dir, "amx.yml",
		fmt.Sprintf("commands:\n  - cmd: touch\n    args: [%q]\n", marker))}
	cfg, err := rules.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	limits := HTTPLimits{ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: time.Second,
		IdleTimeout: time.Second, MaxHeaderBytes: 4 << 10}
	addr := serve(t, ServeOptions{HTTP: limits,
		Options: Options{Config: cfg, Rules: compile(t, cfg.Set), Log: slog.New(slog.DiscardHandler), Source: src}})
	dial := func(t *testing.T, start string) net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := io.WriteString(c, start); err != nil {
			t.Fatal(err)
		}
		return c
	}
	// closed reads what the server sends until it closes the connection.
	// The deadline is generous: only a server that never closes fails.
	closed := func(t *testing.T, c net.Conn) string {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		got, err := io.ReadAll(c)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the server kept the connection open; read %q", got)
		}
		return string(got)
	}
	body := `{"status":"firing","alerts":[{"labels":{"a":"b"}}]}`

	t.Run("headers stall", func(t *testing.T) {
		c := dial(t, "POST / HTTP/1.1\r\nHost: amx\r\nContent-Ty")
		// Others are answered while it stalls.
		resp, err := http.Get("http://" + addr + "/-/healthy")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("another client while one stalls: %v %v", resp, err)
		}
		resp.Body.Close()
		// net/http closes it with a 400 (or, racing the close, nothing).
		if got := closed(t, c); got != "" && !strings.HasPrefix(got, "HTTP/1.1 400") {
			t.Errorf("answer to a stalled request: %q", got)
		}
	})
	t.Run("body stalls", func(t *testing.T) {
		c := dial(t, fmt.Sprintf("POST / HTTP/1.1\r\nHost: amx\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:10]))
		answer := closed(t, c)
		if !strings.HasPrefix(answer, "HTTP/1.1 400") || !strings.Contains(answer, "read body: ") {
			t.Errorf("answer to a stalled body: %q", answer)
		}
	})
	t.Run("headers too large", func(t *testing.T) {
		c := dial(t, "POST / HTTP/1.1\r\nHost: amx\r\nX-Pad: "+strings.Repeat("x", 8<<10)+"\r\n\r\n")
		status, _ := bufio.NewReader(c).ReadString('\n')
		if !strings.HasPrefix(status, "HTTP/1.1 431") {
			t.Errorf("answer to 8 KiB of headers: %q", status)
		}
	})
	t.Run("idle connection", func(t *testing.T) {
		c := dial(t, "GET /-/healthy HTTP/1.1\r\nHost: amx\r\n\r\n")
		if answer := closed(t, c); !strings.HasPrefix(answer, "HTTP/1.1 200") {
			t.Errorf("answer, then close when idle: %q", answer)
		}
	})
	if _, err := os.Stat(marker); err == nil {
		t.Error("a command ran for a request that never arrived whole")
	}
}

// serve runs Serve on a loopback port until the test ends, and returns the
// address.
func serve(tb testing.TB, opts ServeOptions) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, ln, opts) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			tb.Error(err)
		}
	})
	return ln.Addr().String()
}
