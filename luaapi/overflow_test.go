package luaapi

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/amx-dev/amx/runner/runnertest"
)

// TestRegistryOverflow: calls that return more values than gopher-lua's
// registry holds raised a panic past its PCall, which took the HTTP
// handler down and left the watchdog spinning. unpack and string.byte
// refuse as Lua 5.1 does; any other overflow becomes the route's error.
func TestRegistryOverflow(t *testing.T) {
	n := notification()
	for len(n.Alerts) < 70_000 {
		n.Alerts = append(n.Alerts, n.Alerts[0])
	}
	// A deadline far past what these take, even under -race on a loaded
	// machine (the deepest took 3 s alone and over 10 s beside the other
	// packages' tests): the test is about the error, not the time.
	vm := NewVM(2*time.Minute, 0, nil)
	for _, tc := range []struct{ src, err string }{
		{`unpack({}, 1, 1e8)`, "overflow.lua:1: too many results to unpack"},
		{`return select("#", unpack(msg.alerts))`, "overflow.lua:1: too many results to unpack"},
		{`return ("x"):rep(1e6):byte(1, -1)`, "overflow.lua:1: string slice too long"},
		{`local t = {} for i = 1, 7999 do t[i] = i end
local function f(n, ...) if n == 0 then return select("#", ...) end local r = f(n - 1, unpack(t)) return r end
return f(20)`, "registry overflow"},
		{`assert(select("#", unpack({1, 2, 3})) == 3 and select("#", ("abc"):byte(1, -1)) == 3)
local t = {} for i = 1, 8000 do t[i] = i end assert(select("#", unpack(t)) == 8000)`, ""},
	} {
		s, err := Compile("overflow.lua", tc.src)
		if err != nil {
			t.Fatal(err)
		}
		_, err = vm.Run(context.Background(), s, "r", n, 0)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.src, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "\n")):
			t.Errorf("%s: err = %q, want one line with %q", tc.src, err, tc.err)
		}
	}
	runnertest.Eventually(t, "the watchdog to stop", func() bool {
		vm.dog.mu.Lock()
		defer vm.dog.mu.Unlock()
		return !vm.dog.watching && vm.dog.active == nil
	})
}

// TestExecWait: exec{wait=} takes true, false, a duration or seconds.
func TestExecWait(t *testing.T) {
	res, err := run(t, `exec{"a", wait = "8s"} exec{"b", wait = 2.5} exec{"c", wait = false} exec{"d"}`)
	if err != nil {
		t.Fatal(err)
	}
	e := res.Execs
	if *e[0].WaitAtMost != 8*time.Second || e[0].Wait != nil || *e[1].WaitAtMost != 2500*time.Millisecond ||
		*e[2].Wait || e[2].WaitAtMost != nil || e[3].Wait != nil || e[3].WaitAtMost != nil {
		t.Errorf("execs %+v", e)
	}
}
