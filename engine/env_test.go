package engine

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/amx-dev/amx/rules"
)

// hostile has label and annotation names that are not valid in a variable
// name (UTF-8 label names are legal since Alertmanager 0.27), one that
// spells another's escape, and values with NUL bytes.
const hostile = `{"status":"firing","receiver":"r","alerts":[{"status":"firing","fingerprint":"f1",
 "labels":{"a":"1","a=b":"2","a-b":"3","a.b":"4","service.name":"svc","é":"5","":"6","U__a_2e_b":"written","nul":"x\u0000y","a_b":"7"},
 "annotations":{"AMX_STATUS=resolved\u0000":"spoof"}}],
 "commonLabels":{"a=b":"2"}}`

// checkEnv holds an environment to what exec needs: every name made of
// ASCII letters, digits and underscores, set once, and no NUL anywhere.
func checkEnv(t testing.TB, env []string) {
	t.Helper()
	names := map[string]bool{}
	for _, kv := range env {
		name, _, ok := strings.Cut(kv, "=")
		if !ok || !plainPart(name) || strings.IndexByte(kv, 0) >= 0 {
			t.Fatalf("variable %q cannot be passed to exec as it is meant", kv)
		}
		if names[name] {
			t.Fatalf("%s set twice", name)
		}
		names[name] = true
	}
}

func TestEnvHostileNames(t *testing.T) {
	m, err := Decode([]byte(hostile))
	if err != nil {
		t.Fatal(err)
	}
	w := classicEnv(m)
	checkEnv(t, w.env)
	for _, kv := range []string{
		"AMX_ALERT_1_LABEL_a=1", // valid names keep their spelling
		"AMX_ALERT_1_LABEL_a_b=7",
		"AMX_ALERT_1_LABEL_U__a_3d_b=2",
		"AMX_ALERT_1_LABEL_U__a_2d_b=3",
		"AMX_ALERT_1_LABEL_U__service_2e_name=svc",
		"AMX_ALERT_1_LABEL_U___e9_=5",
		"AMX_ALERT_1_LABEL_U__=6",
		"AMX_ALERT_1_LABEL_U__a_2e_b=written", // the name as written wins
		"AMX_ALERT_1_ANNOTATION_U__AMX__STATUS_3d_resolved_0_=spoof",
		"AMX_LABEL_U__a_3d_b=2",
		"AMX_STATUS=firing",
	} {
		if !slices.Contains(w.env, kv) {
			t.Errorf("missing %q", kv)
		}
	}
	want := []string{
		"AMX_ALERT_1_LABEL_U__a_2e_b (escaped name \"a.b\", taken by the name as written)",
		"AMX_ALERT_1_LABEL_nul (a NUL byte in its value)",
	}
	if !slices.Equal(w.dropped, want) {
		t.Errorf("dropped %q\nwant %q", w.dropped, want)
	}
}

// TestEnvHostileRuns: a NUL in one label does not stop the command; the
// variable is left out, the rest is there, and the log says so.
func TestEnvHostileRuns(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "env")
	e, logs := newTestEngine(t, &rules.Command{Cmd: "sh", Args: []string{"-c", "env > " + out}, Process: notify})
	if code, answer := do(t, e.Handler(), "POST", "/", hostile); code != 200 {
		t.Fatalf("%d %q", code, answer)
	}
	env, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(env), "AMX_ALERT_1_LABEL_a=1\n") || strings.Contains(string(env), "LABEL_nul") {
		t.Errorf("environment:\n%s", env)
	}
	if !strings.Contains(logs.String(), `level=WARN msg="variables left out of the commands' environment"`) ||
		!strings.Contains(logs.String(), "count=2") {
		t.Errorf("logs:\n%s", logs)
	}
}

// group is a firing notification of n alerts, each with a few labels.
func group(n int) string {
	var b strings.Builder
	b.WriteString(`{"status":"firing","receiver":"r","groupKey":"g","alerts":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"status":"firing","fingerprint":"%016x","labels":{"alertname":"DiskFull","instance":"host-%05d:9100","job":"node","device":"/dev/sda1"},"annotations":{"summary":"disk full on host-%05d"}}`, i, i, i)
	}
	b.WriteString(`]}`)
	return b.String()
}

// TestEnvBudget: a group too large for exec's limit on the environment
// (E2BIG, the old executor's "argument list too long" from 5,000 alerts)
// still runs its commands. They get the variables of as many alerts as
// fit, AMX_ALERTS_TRUNCATED=1, and the whole notification in a private
// AMX_PAYLOAD_FILE that is removed when they end. A small group keeps the
// classic environment exactly.
func TestEnvBudget(t *testing.T) {
	dir := t.TempDir()
	script := `echo "$AMX_ALERT_LEN ${AMX_ALERTS_TRUNCATED:-none} $AMX_ALERT_1_LABEL_instance" > "$1/seen"
echo "$AMX_PAYLOAD_FILE" > "$1/name"
[ -n "$AMX_PAYLOAD_FILE" ] && cp "$AMX_PAYLOAD_FILE" "$1/copy" && stat -c %a "$AMX_PAYLOAD_FILE" > "$1/mode"
env | grep -c '^AMX_ALERT_[0-9]*_FINGERPRINT=' > "$1/count"`
	set := &rules.Set{Commands: []*rules.Command{{Name: "commands[0]", Cmd: "sh", Args: []string{"-c", script, "sh", dir}, Process: notify}}}
	var logs bytes.Buffer
	e := New(Options{Config: &rules.Config{MaxBodyBytes: 64 << 20, Set: set}, Rules: compile(t, set),
		Log: slog.New(slog.NewTextHandler(&logs, nil))})
	read := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		return strings.TrimSpace(string(b))
	}

	big := group(6000)
	if code, answer := do(t, e.Handler(), "POST", "/", big); code != 200 {
		t.Fatalf("%d %q", code, answer)
	}
	if got := read("seen"); got != "6000 1 host-00000:9100" {
		t.Errorf("AMX_ALERT_LEN, AMX_ALERTS_TRUNCATED, the first alert: %q", got)
	}
	if n, _ := strconv.Atoi(read("count")); n < 1000 || n >= 6000 {
		t.Errorf("%d alerts' variables in the environment, want some but not all", n)
	}
	if read("copy") != big {
		t.Error("AMX_PAYLOAD_FILE does not hold the notification as it arrived")
	}
	if got := read("mode"); got != "600" {
		t.Errorf("payload file mode %s, want 600", got)
	}
	if _, err := os.Stat(read("name")); !os.IsNotExist(err) {
		t.Errorf("the payload file outlived the command: %v", err)
	}
	if !strings.Contains(logs.String(), "commands find them all in AMX_PAYLOAD_FILE") {
		t.Errorf("logs:\n%s", logs.String())
	}

	if code, _ := do(t, e.Handler(), "POST", "/", group(3)); code != 200 {
		t.Fatal(code)
	}
	if got, name := read("seen"), read("name"); got != "3 none host-00000:9100" || name != "" {
		t.Errorf("a small group: %q, AMX_PAYLOAD_FILE %q", got, name)
	}
}

// TestEnvLongValue: a value longer than exec takes is left out, and the
// command runs.
func TestEnvLongValue(t *testing.T) {
	m, err := Decode([]byte(`{"status":"firing","alerts":[{"labels":{"a":"1","big":"` + strings.Repeat("x", 200<<10) + `"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	w := classicEnv(m)
	if !slices.Contains(w.env, "AMX_ALERT_1_LABEL_a=1") || slices.ContainsFunc(w.env, func(kv string) bool { return strings.HasPrefix(kv, "AMX_ALERT_1_LABEL_big=") }) {
		t.Error("the long value is not the only one left out")
	}
	if len(w.dropped) != 1 || !strings.Contains(w.dropped[0], "more than exec takes") {
		t.Errorf("dropped: %q", w.dropped)
	}
}

// TestStdinPayload: stdin: payload gives a command, or every exec of a
// route, the notification as it arrived; a script's own stdin= wins.
func TestStdinPayload(t *testing.T) {
	dir := t.TempDir()
	set := &rules.Set{LuaTimeout: rules.DefaultLuaTimeout,
		Commands: []*rules.Command{{Name: "commands[0]", Cmd: "sh", Args: []string{"-c", `cat > "$0/classic"`, dir},
			Process: rules.Process{NotifyOnFailure: true, StdinPayload: true}}},
		Routes: []*rules.Route{{Name: "r", ScriptName: "r.lua",
			Process: rules.Process{NotifyOnFailure: true, StdinPayload: true},
			Source: fmt.Sprintf(`exec("sh", "-c", 'cat > "$0/route"', %q)
exec{"sh", "-c", 'cat > "$0/own"', %[1]q, stdin = "the script's own"}`, dir)}}}
	e := New(Options{Config: &rules.Config{MaxBodyBytes: 1 << 20, Set: set}, Rules: compile(t, set), Log: slog.New(slog.DiscardHandler)})
	if code, answer := do(t, e.Handler(), "POST", "/", firing); code != 200 {
		t.Fatalf("%d %q", code, answer)
	}
	for file, want := range map[string]string{"classic": firing, "route": firing, "own": "the script's own"} {
		if got, _ := os.ReadFile(filepath.Join(dir, file)); string(got) != want {
			t.Errorf("%s read %q on stdin, want %q", file, got, want)
		}
	}
}
