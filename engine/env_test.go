package engine

import (
	"os"
	"path/filepath"
	"slices"
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
