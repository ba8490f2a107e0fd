package main

// End-to-end tests of what amx says it does: amx ps and amx runs against a
// running amx.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/amx-dev/amx/engine/history"
	"github.com/amx-dev/amx/runner/runnertest"
)

// client runs an amx client subcommand against a with the test's token.
func client(t *testing.T, a *amx, dir string, args ...string) string {
	t.Helper()
	args = append(args[:1:1], append([]string{"--url", "http://" + a.addr, "--bearer-token-file", filepath.Join(dir, "secret")}, args[1:]...)...)
	out, err := exec.Command(amxBin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("amx %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestPsAndRuns(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "secret", "s3cret\n")
	cfg := writeFile(t, dir, "amx.yml", `
auth:
  authorization:
    credentials_file: secret
routes:
  - name: hold
    match_labels: {alertname: Hold}
    wait: false
    resolved_signal: SIGTERM
    lua: |
      if alert.status == "resolved" then return end
      exec{"sh", "-c", "echo holding " .. alert.labels.instance .. "; exec sleep 60", key = alert.labels.instance, max = 2}
  - name: fail
    match_labels: {alertname: Fail}
    lua: |
      exec("sh", "-c", "echo giving up >&2; exit 7")
`)
	a := startAmx(t, "-f", cfg)
	url := "http://" + a.addr
	token := &http.Client{Transport: bearer("s3cret")}
	if code, body := post(t, token, url+"/", alertJSON("firing", "f1", "2026-12-05T08:00:00Z", `{"alertname":"Hold","instance":"db1"}`)); code != 200 {
		t.Fatalf("%d %s", code, body)
	}

	var ps history.ProcessList
	runnertest.Eventually(t, "the process lists its output", func() bool {
		if err := json.Unmarshal([]byte(client(t, a, dir, "ps", "-o", "json")), &ps); err != nil {
			t.Fatal(err)
		}
		return len(ps.Processes) == 1 && ps.Processes[0].Output == "holding db1"
	})
	p := ps.Processes[0]
	if cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.Pid)); !strings.HasPrefix(string(cmdline), "sleep\x0060") {
		t.Errorf("pid %d runs %q, want the route's sleep", p.Pid, cmdline)
	}
	if p.Action != "hold" || p.Key != "db1" || p.Max != 2 || p.Live != 1 || p.Alertname != "Hold" || p.Labels["instance"] != "db1" {
		t.Errorf("process %+v", p)
	}
	table := client(t, a, dir, "ps")
	if !strings.Contains(table, "RUN") || !strings.Contains(table, " hold ") || !strings.Contains(table, strconv.Itoa(p.Pid)) ||
		!strings.Contains(table, "1/2") || !strings.Contains(table, `Hold{instance="db1"}`) {
		t.Errorf("amx ps:\n%s", table)
	}

	// The resolve ends it; a failing route adds a failed run.
	post(t, token, url+"/", alertJSON("resolved", "f1", "2026-12-05T08:00:00Z", `{"alertname":"Hold","instance":"db1"}`))
	post(t, token, url+"/", alertJSON("firing", "f2", "2026-12-05T08:00:00Z", `{"alertname":"Fail","instance":"db2"}`))
	var runs history.RunList
	runnertest.Eventually(t, "the held process ends", func() bool {
		json.Unmarshal([]byte(client(t, a, dir, "runs", "-o", "json", "--action", "hold")), &runs)
		return len(runs.Runs) == 1 && runs.Runs[0].Outcome == history.Resolved
	})
	if r := runs.Runs[0]; r.ID != p.ID || r.Signal != "SIGTERM" || r.ExitCode != nil {
		t.Errorf("resolved run %+v", r)
	}
	table = client(t, a, dir, "runs")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], "fail") || !strings.Contains(lines[1], "failed") ||
		!strings.Contains(lines[1], " 7 ") || !strings.Contains(lines[2], "resolved") || !strings.Contains(lines[2], "SIGTERM") {
		t.Errorf("amx runs, newest first:\n%s", table)
	}
	if out := client(t, a, dir, "runs", "--outcome", "failed", "--limit", "1"); strings.Count(out, "\n") != 2 {
		t.Errorf("amx runs --outcome failed --limit 1:\n%s", out)
	}
	detail := client(t, a, dir, "runs", strconv.FormatUint(p.ID, 10))
	for _, want := range []string{"Action:       hold", "Outcome:      resolved", "Output:\nholding db1\n", "AMX_ROUTE"} {
		if !strings.Contains(detail, want) {
			t.Errorf("amx runs %d lacks %q:\n%s", p.ID, want, detail)
		}
	}
	if out, err := exec.Command(amxBin, "runs", "--url", url).CombinedOutput(); err == nil || !strings.Contains(string(out), "401") {
		t.Errorf("amx runs without credentials: %v\n%s", err, out)
	}
}

// get fetches url without credentials.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: deadline}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// getJSON fetches url and decodes its JSON answer into out.
func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	code, body := get(t, url)
	if code != 200 {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	if err := json.Unmarshal([]byte(body), out); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
