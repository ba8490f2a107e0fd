package luaapi

import (
	"context"
	"testing"
	"time"
)

func BenchmarkTmp(b *testing.B) {
	for _, tc := range []struct{ name, src string }{
		{"empty", "local x = 1"},
		{"alert.status", "local x = alert.status"},
		{"labels", "local x = alert.labels"},
		{"labels.sev", "local x = alert.labels.severity"},
		{"labels.sev x3", "local x = alert.labels.severity local y = alert.labels.instance local z = alert.labels.job"},
		{"skip", "skip('x')"},
		{"exec", "exec('a', 'b')"},
		{"exec{}", "exec{'a', 'b', timeout='10m'}"},
		{"match", "local h = ('app3:8080'):match('^([^:]+)')"},
	} {
		s, err := Compile("t.lua", tc.src)
		if err != nil {
			b.Fatal(err)
		}
		n := recorded(b, "firing-diskfull-two-alerts.json")
		vm := NewVM(100*time.Millisecond, 0, nil)
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				vm.Run(context.Background(), s, "r", n, i%2)
			}
		})
	}
}

func BenchmarkTmp2(b *testing.B) {
	for _, tc := range []struct{ name, src string }{
		{"page", `if alert.labels.severity ~= "page" then return end exec("bin/page", alert.labels.instance)`},
		{"nothing", ``},
	} {
		s, err := Compile("t.lua", tc.src)
		if err != nil {
			b.Fatal(err)
		}
		n := recorded(b, "firing-diskfull-two-alerts.json")
		vm := NewVM(100*time.Millisecond, 0, nil)
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				vm.Run(context.Background(), s, "r", n, i%2)
			}
		})
	}
}
