// Package statetest helps tests that need a real state backend.
package statetest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// StartRedis runs a redis-server of its own on a free loopback port,
// without persistence, until the test ends. It skips when redis-server is
// missing, except under CI, which installs it.
func StartRedis(t testing.TB) string {
	t.Helper()
	addr, _ := StartRedisStoppable(t)
	return addr
}

// StartRedisStoppable is StartRedis, with a function that stops the
// server before the test ends.
func StartRedisStoppable(t testing.TB) (addr string, stop func()) {
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
	addr = ln.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	ln.Close()
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir(), "--maxmemory-policy", "noeviction")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() { once.Do(func() { cmd.Process.Kill(); cmd.Wait() }) }
	t.Cleanup(stop)
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	for deadline := time.Now().Add(30 * time.Second); c.Ping(context.Background()).Err() != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("redis-server did not answer")
		}
	}
	return addr, stop
}
