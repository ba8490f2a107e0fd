package luaapi

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestGuards: which leading statements Run decides in Go, and that every
// script gives the same result for every alert as when it runs whole.
func TestGuards(t *testing.T) {
	for _, tc := range []struct {
		src    string
		guards int
	}{
		{`if alert.status ~= "firing" then return end exec("a")`, 1},
		{`if alert.labels.maintenance == "true" then skip("maintenance window") end exec("a")`, 1},
		{`if alert.labels["instance"] == "db1:9100" then skip() end
		  if not alert.annotations.runbook_url then return end
		  exec("a", alert.labels.instance)`, 2},
		{`if (alert.labels.mountpoint or "/") == "/" and alert.status == "firing" then return end exec("a")`, 1},
		{`if alert.labels.nothing == nil or alert.labels.instance ~= nil and false then return end exec("a")`, 1},
		{`if true then skip("always") end`, 1},
		{`skip("bench")`, 1},
		{`return`, 1},
		{`if alert.status == "resolved" then return end if alert.labels.instance == "db1:9100" then exec("one") end`, 2},
		{`if alert.labels.a == "1" then env("X", "y") exec("one", alert.labels.b) end`, 1},
		{`if alert.labels.a == "1" then exec("one") end -- nothing after it but a comment`, 1},
		{`if alert.labels.a == "1" then skip("one") end`, 1},
		// Not guards: the script runs as written.
		{`local x = 1 if alert.status ~= "firing" then return end exec("a")`, 0},
		{`if alert.status ~= "firing" then return else exec("b") end exec("a")`, 0},
		{`if alert.labels.a == "1" then exec("one") end exec("two")`, 0},
		{`if alert.labels.a == "1" then exec("one") else exec("two") end`, 0},
		{`local b = alert.labels.b if alert.labels.a == "1" then exec("one", b) end`, 0},
		{`if alert.labels.a:len() == 1 then exec("one") end`, 0},
		{`if alert.status == "resolved" then return elseif alert.labels.instance then exec("i") end`, 0},
		{`if alert.status ~= "firing" then return 1 end exec("a")`, 0},
		{`if alert.status ~= "firing" then log("no") return end exec("a")`, 0},
		{`if alert.labels.instance:match("^db1") then return end exec("a")`, 0},
		{`if alert.labels.instance > "db" then return end exec("a")`, 0},
		{`if alert.labels.instance == alert.labels.job then return end exec("a")`, 1},
		{`if msg.status == "firing" then return end exec("a")`, 0},
		{`if alert.fingerprint == "x" then return end exec("a")`, 0},
		{`if alert.status ~= "firing" then skip(alert.status) end exec("a")`, 0},
		{`if alert.status ~= "firing" then skip("a", "b") end exec("a")`, 0},
		{`if alert.status ~= "firing" then skip(1) end exec("a")`, 0},
		{`if alert.status ~= "firing" then exec("r") end exec("a")`, 0},
		{`if #alert.status == 5 then return end exec("a")`, 0},
	} {
		fast, err := compile("rule.lua", tc.src, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(fast.guards) != tc.guards {
			t.Errorf("%s: %d guards, want %d", tc.src, len(fast.guards), tc.guards)
		}
		compareGuards(t, tc.src, fast, guardAlerts())
	}
}

// TestGuardsRandom compares random guards with the script run whole, over
// alerts whose status, labels and annotations come and go.
func TestGuardsRandom(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	leaves := []string{`alert.status`, `alert.labels.a`, `alert.labels["b"]`, `alert.annotations.a`,
		`"1"`, `"2"`, `"firing"`, `nil`, `true`, `false`}
	var expr func(depth int) string
	expr = func(depth int) string {
		if depth == 0 {
			return leaves[rnd.IntN(len(leaves))]
		}
		switch rnd.IntN(5) {
		case 0:
			return "not " + expr(depth-1)
		case 1:
			return "(" + expr(depth-1) + " and " + expr(depth-1) + ")"
		case 2:
			return "(" + expr(depth-1) + " or " + expr(depth-1) + ")"
		case 3:
			return "(" + expr(depth-1) + " == " + expr(depth-1) + ")"
		default:
			return "(" + expr(depth-1) + " ~= " + expr(depth-1) + ")"
		}
	}
	alerts := guardAlerts()
	for range 300 {
		var src strings.Builder
		for i := range 1 + rnd.IntN(3) {
			if rnd.IntN(2) == 0 {
				fmt.Fprintf(&src, "if %s then return end\n", expr(rnd.IntN(4)))
			} else {
				fmt.Fprintf(&src, "if %s then skip(\"guard %d\") end\n", expr(rnd.IntN(4)), i)
			}
		}
		if rnd.IntN(2) == 0 {
			src.WriteString(`exec("ran", alert.labels.a or "-")`)
		} else { // a last if, decided too when its condition is false
			fmt.Fprintf(&src, "if %s then exec(\"ran\", alert.labels.a or \"-\") end", expr(rnd.IntN(4)))
		}
		fast, err := compile("rule.lua", src.String(), true)
		if err != nil {
			t.Fatalf("%s: %v", src.String(), err)
		}
		if len(fast.guards) == 0 {
			t.Fatalf("%s: no guards", src.String())
		}
		compareGuards(t, src.String(), fast, alerts)
	}
}

// guardAlerts are alerts for every combination of a status and a few
// labels and annotations present, absent or different.
func guardAlerts() *Notification {
	n := &Notification{Status: "firing"}
	values := []string{"", "1", "2"} // "" stands for absent
	for _, status := range []string{"firing", "resolved"} {
		for _, a := range values {
			for _, b := range values {
				for _, ann := range values {
					al := Alert{Status: status, Labels: map[string]string{"instance": "db1:9100", "job": "db1:9100"},
						Annotations: map[string]string{}}
					if a != "" {
						al.Labels["a"] = a
					}
					if b != "" {
						al.Labels["b"] = b
					}
					if ann != "" {
						al.Annotations["a"] = ann
						al.Annotations["runbook_url"] = "http://x"
						al.Labels["mountpoint"] = "/"
					}
					n.Alerts = append(n.Alerts, al)
				}
			}
		}
	}
	return n
}

// compareGuards runs fast, whose guards Run decides, and the script as
// written, which runs whole, for every alert of n.
func compareGuards(t *testing.T, src string, fast *Script, n *Notification) {
	t.Helper()
	slow, err := compile("rule.lua", src, false)
	if err != nil {
		t.Fatal(err)
	}
	vm := NewVM(time.Minute, 0, nil)
	for i := range n.Alerts {
		want, wantErr := vm.Run(context.Background(), slow, "route", n, i)
		got, gotErr := vm.Run(context.Background(), fast, "route", n, i)
		if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s\nalert %+v:\nguarded: %+v %v\nwhole:   %+v %v", src, n.Alerts[i], got, gotErr, want, wantErr)
		}
	}
}
