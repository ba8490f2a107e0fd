package engine

import (
	"os"
	"reflect"
	"testing"

	"github.com/amx-dev/amx/luaapi"
)

// TestScriptView: a view shows the notification's fields, and a released
// one keeps nothing of it, not even in the spare capacity of its alerts.
func TestScriptView(t *testing.T) {
	body, err := os.ReadFile("../examples/payloads/firing-diskfull-two-alerts.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	n := scriptView(m)
	a := n.Alerts[1]
	if n.GroupKey != m.GroupKey || len(n.Alerts) != 2 || a.Fingerprint != m.Alerts[1].Fingerprint ||
		a.StartsAt != m.Alerts[1].StartsAt.Unix() || !reflect.DeepEqual(a.Labels, m.Alerts[1].Labels) {
		t.Fatalf("view %+v", n)
	}
	releaseView(n)
	if !reflect.DeepEqual(*n, luaapi.Notification{Alerts: n.Alerts}) || len(n.Alerts) != 0 {
		t.Fatalf("released view %+v", n)
	}
	for _, a := range n.Alerts[:cap(n.Alerts)] {
		if !reflect.DeepEqual(a, luaapi.Alert{}) {
			t.Fatalf("released view keeps %+v", a)
		}
	}
}
