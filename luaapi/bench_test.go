package luaapi

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"
)

// recorded reads a recorded Alertmanager payload as scripts see it.
func recorded(tb testing.TB, name string) *Notification {
	tb.Helper()
	body, err := os.ReadFile("../examples/payloads/" + name)
	if err != nil {
		tb.Fatal(err)
	}
	var m struct {
		Receiver, Status, GroupKey, ExternalURL      string
		GroupLabels, CommonLabels, CommonAnnotations map[string]string
		TruncatedAlerts                              int
		Alerts                                       []struct {
			Status, GeneratorURL, Fingerprint string
			Labels, Annotations               map[string]string
			StartsAt, EndsAt                  time.Time
		}
	}
	if err := json.Unmarshal(body, &m); err != nil {
		tb.Fatal(err)
	}
	n := &Notification{Receiver: m.Receiver, Status: m.Status, GroupKey: m.GroupKey, ExternalURL: m.ExternalURL,
		GroupLabels: m.GroupLabels, CommonLabels: m.CommonLabels, CommonAnnotations: m.CommonAnnotations,
		TruncatedAlerts: m.TruncatedAlerts}
	for _, a := range m.Alerts {
		n.Alerts = append(n.Alerts, Alert{Status: a.Status, Labels: a.Labels, Annotations: a.Annotations,
			StartsAt: a.StartsAt.Unix(), GeneratorURL: a.GeneratorURL, Fingerprint: a.Fingerprint})
	}
	return n
}

func benchRoute(b *testing.B, file, payload string) {
	src, err := os.ReadFile(file)
	if err != nil {
		b.Fatal(err)
	}
	s, err := Compile(file, string(src))
	if err != nil {
		b.Fatal(err)
	}
	n := recorded(b, payload)
	vm := NewVM(100*time.Millisecond, 0, nil)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		res, err := vm.Run(ctx, s, "route", n, i%len(n.Alerts))
		if err != nil || len(res.Execs) != 1 {
			b.Fatalf("%+v %v", res, err)
		}
	}
}

// BenchmarkRouteDisk is one per-alert evaluation of examples/rules/disk.lua.
func BenchmarkRouteDisk(b *testing.B) {
	benchRoute(b, "../examples/rules/disk.lua", "firing-diskfull-two-alerts.json")
}

// BenchmarkRouteReboot is one per-alert evaluation of examples/rules/reboot.lua.
func BenchmarkRouteReboot(b *testing.B) {
	benchRoute(b, "../examples/rules/reboot.lua", "firing-rebootmachine.json")
}

// BenchmarkInvocation is the fixed cost of one invocation: a script that
// does nothing.
func BenchmarkInvocation(b *testing.B) {
	s, err := Compile("empty.lua", "local x = 1")
	if err != nil {
		b.Fatal(err)
	}
	n := recorded(b, "firing-rebootmachine.json")
	vm := NewVM(100*time.Millisecond, 0, nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := vm.Run(ctx, s, "route", n, 0); err != nil {
			b.Fatal(err)
		}
	}
}
