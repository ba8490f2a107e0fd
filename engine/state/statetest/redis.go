// Package statetest helps tests that need a real state backend.
package statetest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a redis-server a test runs on a free loopback port.
type Redis struct {
	Addr string
	t    testing.TB
	bin  string
	dir  string
	aof  bool
	cmd  *exec.Cmd
}

// StartRedis runs a redis-server of its own on a free loopback port,
// without persistence, until the test ends. It skips when redis-server is
// missing, except under CI, which installs it.
func StartRedis(t testing.TB) string {
	t.Helper()
	return NewRedis(t, false).Addr
}

// NewRedis starts a redis-server, with AOF persistence (appendfsync
// always) when aof is set, until the test ends.
func NewRedis(t testing.TB, aof bool) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server is missing under CI: .ci/run must install redis-server")
		}
		t.Skip("redis-server not installed (apt-get install redis-server); CI runs this test")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Redis{Addr: ln.Addr().String(), t: t, bin: bin, dir: t.TempDir(), aof: aof}
	ln.Close()
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// Start starts the server again after Stop, on the same port and files.
func (r *Redis) Start() {
	r.t.Helper()
	_, port, _ := net.SplitHostPort(r.Addr)
	args := []string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--dir", r.dir, "--maxmemory-policy", "noeviction"}
	if r.aof {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	r.cmd = exec.Command(r.bin, args...)
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer c.Close()
	for deadline := time.Now().Add(30 * time.Second); c.Ping(context.Background()).Err() != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			r.t.Fatal("redis-server did not answer")
		}
	}
}

// Stop kills the server; a second Stop does nothing.
func (r *Redis) Stop() {
	if r.cmd != nil {
		r.cmd.Process.Signal(syscall.SIGCONT) // a paused server must be able to die
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
}

// Pause stops the server without losing its data (SIGSTOP), Resume lets
// it go on (SIGCONT): an outage as clients see it.
func (r *Redis) Pause()  { r.cmd.Process.Signal(syscall.SIGSTOP) }
func (r *Redis) Resume() { r.cmd.Process.Signal(syscall.SIGCONT) }
