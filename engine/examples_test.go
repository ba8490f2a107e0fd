package engine

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/amx-dev/amx/rules"
)

// render writes an action as "name: cmd args [fingerprint] options", with
// the command's base name, so expectations read like the rules.
func render(p Plan) (actions, skips []string) {
	for i, a := range p.Actions {
		s := fmt.Sprintf("%s: %s [%s]", a.Name, strings.Join(append([]string{filepath.Base(a.Cmd)}, a.Args...), " "), a.Fingerprint)
		if c := p.Claims[i]; c.Max > 0 {
			s += fmt.Sprintf(" max=%d", c.Max)
		}
		if a.Timeout > 0 {
			s += " timeout=" + a.Timeout.String()
		}
		actions = append(actions, s)
	}
	for _, sk := range p.Skips {
		skips = append(skips, fmt.Sprintf("%s: %s %s [%s]", sk.Name, sk.Reason, sk.Detail, sk.Fingerprint))
	}
	return actions, skips
}

// TestExampleRules runs examples/rules.yml on the recorded Alertmanager
// payloads: every example route is exercised.
func TestExampleRules(t *testing.T) {
	r := loadRules(t, "../examples/rules.yml")
	for _, tc := range []struct {
		payload string
		edit    func(*Message)
		actions []string
		skips   []string
	}{
		{
			payload: "firing-diskfull-two-alerts.json",
			actions: []string{
				"disk-cleanup: cleanup-disk db1 /var [0aa7859a3dd8b47b] max=1 timeout=10m0s",
				"disk-cleanup: cleanup-disk db2 / [8bc64ed21b99e322] max=1 timeout=10m0s",
				"page-by-severity: page DiskFull Disk /var on db1 is 97% full [0aa7859a3dd8b47b]",
				"page-by-severity: ticket DiskFull Disk / on db2 is 91% full [8bc64ed21b99e322]",
				"commands[0]: echo classic command for every alert [0aa7859a3dd8b47b]",
			},
		},
		{
			payload: "firing-diskfull-two-alerts.json",
			edit:    func(m *Message) { m.Alerts[0].Labels["maintenance"] = "true" },
			actions: []string{
				"disk-cleanup: cleanup-disk db2 / [8bc64ed21b99e322] max=1 timeout=10m0s",
				"page-by-severity: page DiskFull Disk /var on db1 is 97% full [0aa7859a3dd8b47b]",
				"page-by-severity: ticket DiskFull Disk / on db2 is 91% full [8bc64ed21b99e322]",
				"commands[0]: echo classic command for every alert [0aa7859a3dd8b47b]",
			},
			skips: []string{"disk-cleanup: lua maintenance window [0aa7859a3dd8b47b]"},
		},
		{
			payload: "firing-rebootmachine.json",
			actions: []string{
				"reboot: reboot-host app3 [e630cdb7300ce41f] max=1",
				"commands[0]: echo classic command for every alert [e630cdb7300ce41f]",
			},
			skips: []string{"page-by-severity: lua severity none is not paged [e630cdb7300ce41f]"},
		},
		{
			payload: "firing-diskfull-one-alert-resolved.json",
			actions: []string{
				"disk-cleanup: cleanup-disk --done db1 /var [0aa7859a3dd8b47b] max=1",
				"disk-cleanup: cleanup-disk db2 / [8bc64ed21b99e322] max=1 timeout=10m0s",
				"page-by-severity: ticket DiskFull Disk / on db2 is 91% full [8bc64ed21b99e322]",
				"commands[0]: echo classic command for every alert [8bc64ed21b99e322]",
			},
		},
		{
			payload: "resolved-diskfull.json",
			actions: []string{
				"disk-cleanup: cleanup-disk --done db1 /var [0aa7859a3dd8b47b] max=1",
				"disk-cleanup: cleanup-disk --done db2 / [8bc64ed21b99e322] max=1",
			},
		},
		{
			payload: "resolved-rebootmachine.json", // nothing to clean up
		},
	} {
		name := tc.payload
		if tc.edit != nil {
			name += " edited"
		}
		t.Run(name, func(t *testing.T) {
			m := readPayload(t, tc.payload)
			if tc.edit != nil {
				tc.edit(m)
			}
			p := Decide(context.Background(), r, m, nil)
			if len(p.Errors) > 0 {
				t.Fatalf("route errors: %+v", p.Errors[0].Err)
			}
			actions, skips := render(p)
			if !slices.Equal(actions, tc.actions) {
				t.Errorf("actions:\n%s\nwant:\n%s", strings.Join(actions, "\n"), strings.Join(tc.actions, "\n"))
			}
			if !slices.Equal(skips, tc.skips) {
				t.Errorf("skips:\n%s\nwant:\n%s", strings.Join(skips, "\n"), strings.Join(tc.skips, "\n"))
			}
		})
	}
}

// TestRouteEnvAndOptions checks the environment and options a route's
// exec carries into its Action.
func TestRouteEnvAndOptions(t *testing.T) {
	r := loadRules(t, "../examples/rules.yml")
	p := Decide(context.Background(), r, readPayload(t, "firing-diskfull-two-alerts.json"), nil)
	a := p.Actions[0]
	classic := Env(readPayload(t, "firing-diskfull-two-alerts.json"))
	if !slices.Equal(a.Environ()[:len(classic)], classic) {
		t.Error("a route's command lacks the classic AMX_* variables")
	}
	for _, kv := range []string{
		"AMX_ROUTE=disk-cleanup",
		"AMX_ALERT_FINGERPRINT=0aa7859a3dd8b47b",
		"AMX_ALERT_STATUS=firing",
		"AMX_ALERT_LABEL_mountpoint=/var",
		"AMX_ALERT_ANNOTATION_summary=Disk /var on db1 is 97% full",
		"RUNBOOK=https://runbooks.example/disk",
	} {
		if !slices.Contains(a.Environ(), kv) {
			t.Errorf("env lacks %q", kv)
		}
	}
	if c := p.Claims; a.Cmd != filepath.Join("..", "examples", "bin", "cleanup-disk") || a.Timeout != 10*time.Minute || c[0].Max != 1 ||
		!a.NotifyOnFailure || c[0].Action == c[1].Action && c[0].Key == c[1].Key {
		t.Errorf("action: %+v", a)
	}
}

// TestRouteActionsShareEnvironment: a route's actions share the
// notification's classic variables instead of each copying them (3,000
// alerts took 1.15 GB in amx explain), and the whole environment stays
// within the budget however many alerts there are.
func TestRouteActionsShareEnvironment(t *testing.T) {
	set := &rules.Set{Routes: []*rules.Route{{Name: "r", ScriptName: "r.lua", Source: `exec("true", alert.labels.instance)`, Process: rules.DefaultProcess()}}}
	var b strings.Builder
	b.WriteString(`{"status":"firing","alerts":[`)
	for i := range 3000 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"status":"firing","fingerprint":"%016x","labels":{"alertname":"Disk","instance":"host-%d:9100"},"annotations":{"summary":"%s"}}`,
			i, i, strings.Repeat("x", 100))
	}
	b.WriteString("]}")
	m, err := Decode([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	p := Decide(context.Background(), compile(t, set), m, nil)
	if len(p.Actions) != 3000 || p.EnvCut == 0 {
		t.Fatalf("%d actions, %d alerts cut from the environment", len(p.Actions), p.EnvCut)
	}
	first := p.Actions[0].CommonEnv
	for i, a := range p.Actions {
		if len(a.CommonEnv) != len(first) || &a.CommonEnv[0] != &first[0] {
			t.Fatalf("action %d has a copy of the classic variables", i)
		}
		size := 0
		for _, kv := range a.Environ() {
			size += len(kv) + 1 + 8
		}
		if size > envBudget {
			t.Fatalf("action %d: %d bytes of variables, over the budget of %d", i, size, envBudget)
		}
	}
}

// TestReplicasDocExample: the Kubernetes sketch in docs/replicas.md
// parses, and the configuration its ConfigMap holds is one amx loads.
func TestReplicasDocExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/replicas.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "## Kubernetes, two replicas and Redis")
	_, rest, ok2 := strings.Cut(rest, "```yaml\n")
	manifests, _, ok3 := strings.Cut(rest, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("no yaml block under the Kubernetes heading")
	}
	dec := yaml.NewDecoder(strings.NewReader(manifests))
	kinds := map[string]int{}
	for {
		var m struct {
			Kind string            `yaml:"kind"`
			Data map[string]string `yaml:"data"`
		}
		if err := dec.Decode(&m); err != nil {
			if err == io.EOF {
				break
			}
			t.Fatal(err)
		}
		kinds[m.Kind]++
		if cfg, ok := m.Data["amx.yml"]; ok {
			file := filepath.Join(t.TempDir(), "amx.yml")
			if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := rules.Load(rules.Source{File: file})
			if err != nil || c.State.Redis == nil || c.State.Redis.Address != "amx-redis:6379" {
				t.Errorf("the ConfigMap's amx.yml: %v", err)
			}
		}
	}
	if kinds["Deployment"] != 2 || kinds["Service"] != 2 || kinds["ConfigMap"] != 1 {
		t.Errorf("kinds: %v", kinds)
	}
}
