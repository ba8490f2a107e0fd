package main

import (
	"strings"
	"testing"
	"time"

	"github.com/amx-dev/amx/engine"
)

// The benchmark itself does not run in CI (it takes minutes and needs
// wrk); these keep its parts honest.

func TestLargeGroupDecodes(t *testing.T) {
	m, err := engine.Decode(largeGroup(1000))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range m.Alerts {
		seen[a.Fingerprint] = true
	}
	if len(m.Alerts) != 1000 || len(seen) != 1000 {
		t.Errorf("%d alerts, %d fingerprints, want 1000 of each", len(m.Alerts), len(seen))
	}
}

func TestParseWrk(t *testing.T) {
	const report = `Running 10s test @ http://127.0.0.1:1/
  2 threads and 16 connections
  83725 requests in 8.02s, 12.14MB read
Requests/sec:  10445.87
Transfer/sec:      1.51MB
`
	if rate, err := parseWrk([]byte(report)); err != nil || rate != 10445.87 {
		t.Errorf("parseWrk = %v, %v", rate, err)
	}
	for _, bad := range []string{
		strings.Replace(report, "Transfer", "  Non-2xx or 3xx responses: 12\nTransfer", 1),
		strings.Replace(report, "Transfer", "  Socket errors: connect 0, read 3, write 0, timeout 0\nTransfer", 1),
		"no report",
	} {
		if _, err := parseWrk([]byte(bad)); err == nil {
			t.Errorf("parseWrk accepted %q", bad)
		}
	}
}

func TestRatiosPairRounds(t *testing.T) {
	// Each round is divided by its own limit, then summarized.
	s := ratios([]float64{90, 50, 200}, []float64{100, 100, 200})
	if s != (stats{0.5, 0.9, 1}) {
		t.Errorf("ratios = %+v", s)
	}
	if got := thousands(1234567.4); got != "1,234,567" {
		t.Errorf("thousands = %q", got)
	}
}

func TestParseCPU(t *testing.T) {
	// A command name with a space and a parenthesis, as /proc shows it.
	const stat = "4242 (amx (x) y) S 1 4242 4242 0 -1 4194560 1270 0 0 0 150 25 300 12 20 0 9 0 123 0 0"
	own, children := parseCPU(stat)
	if own != 1750*time.Millisecond || children != 3120*time.Millisecond {
		t.Errorf("own %v, children %v; want 1.75s and 3.12s", own, children)
	}
}

func TestWrkDuration(t *testing.T) {
	// CPU per request divides by the requests wrk made in the time it ran.
	for d, want := range map[time.Duration]time.Duration{
		200 * time.Millisecond:  time.Second,
		1400 * time.Millisecond: time.Second,
		2 * time.Second:         2 * time.Second,
		2600 * time.Millisecond: 3 * time.Second,
	} {
		if got := wrkDuration(d); got != want {
			t.Errorf("wrkDuration(%v) = %v, want %v", d, got, want)
		}
	}
}
