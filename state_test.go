package main

// End-to-end tests of the delivery state: retries, copies and repeats of a
// notification, keys, cooldown and rate, and what survives kill -9.

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/amx-dev/amx/runner/runnertest"
)

// alertJSON is a one-alert notification; an alert is its fingerprint,
// start and labels.
func alertJSON(status, fp, startsAt string, labels string) string {
	return fmt.Sprintf(`{"status":%q,"receiver":"r","groupKey":"g","alerts":[{"status":%[1]q,"fingerprint":%q,"startsAt":%q,"labels":%s}],"commonLabels":%[4]s}`,
		status, fp, startsAt, labels)
}

// lines counts the lines of a file the commands append to.
func lines(dir, name string) int {
	b, _ := os.ReadFile(filepath.Join(dir, name))
	return strings.Count(string(b), "\n")
}

// TestRetriesAndRepeats: a retry after a 500 runs what failed and skips
// what succeeded, even past the dedupe window; after a delivered success a
// copy in the window is a duplicate and a later one a repeat that runs.
func TestRetriesAndRepeats(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "amx.yml", fmt.Sprintf(`
dedupe_window: 1s
routes:
  - name: work
    lua: |
      exec("sh", "-c", 'echo ok >> "$0/ok"', %[1]q)
      exec("sh", "-c", 'echo try >> "$0/tries"; test -e "$0/fixed"', %[1]q)
`, dir))
	a := startAmx(t, "-f", cfg)
	url := "http://" + a.addr + "/"
	firing := alertJSON("firing", "f1", "2026-12-05T08:00:00Z", `{"alertname":"A"}`)
	count := func(step string, ok, tries int) {
		t.Helper()
		if lines(dir, "ok") != ok || lines(dir, "tries") != tries {
			t.Errorf("%s: ok ran %d times, the failing one %d; want %d and %d", step, lines(dir, "ok"), lines(dir, "tries"), ok, tries)
		}
	}
	if code, _ := post(t, nil, url, firing); code != 500 {
		t.Fatalf("first delivery: %d, want 500", code)
	}
	count("first delivery", 1, 1)
	time.Sleep(1200 * time.Millisecond) // past the window: a retry is no repeat
	writeFile(t, dir, "fixed", "")
	if code, body := post(t, nil, url, firing); code != 200 {
		t.Fatalf("retry: %d %q", code, body)
	}
	count("retry", 1, 2)
	post(t, nil, url, firing)
	count("copy within the window", 1, 2)
	time.Sleep(1200 * time.Millisecond)
	post(t, nil, url, firing)
	count("repeat after the window", 2, 3)
}

// TestCopyWaitsForTheOriginal: a copy arriving while the first delivery
// still runs its action waits for it and answers as it does, here 500.
func TestCopyWaitsForTheOriginal(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "amx.yml", fmt.Sprintf(`
routes:
  - name: slow
    lua: |
      exec("sh", "-c", 'echo run >> "$0/runs"; while ! test -e "$0/go"; do sleep 0.05; done; exit 3', %q)
`, dir))
	a := startAmx(t, "-f", cfg)
	url := "http://" + a.addr + "/"
	firing := alertJSON("firing", "f1", "2026-12-05T08:00:00Z", `{"alertname":"A"}`)
	first := postAsync(url, firing)
	runnertest.Eventually(t, "the first run", func() bool { return lines(dir, "runs") == 1 })
	copied := postAsync(url, firing)
	a.waitLog(t, "waiting for the answer of the delivery it copies")
	writeFile(t, dir, "go", "")
	for name, c := range map[string]<-chan answer{"original": first, "copy": copied} {
		if got := <-c; got.code != 500 {
			t.Errorf("%s: %d %q, want 500", name, got.code, got.body)
		}
	}
	if n := lines(dir, "runs"); n != 1 {
		t.Errorf("the command ran %d times, want once", n)
	}
}

// TestLateFiringCopy: a firing copy of an occurrence whose resolve came
// first starts nothing; the alert's next occurrence runs.
func TestLateFiringCopy(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "amx.yml", fmt.Sprintf(`
commands:
  - cmd: sh
    args: ["-c", 'echo run >> "$0/runs"', %q]
`, dir))
	a := startAmx(t, "-f", cfg)
	url := "http://" + a.addr + "/"
	post(t, nil, url, alertJSON("resolved", "f1", "2026-12-05T08:00:00Z", `{"alertname":"A"}`))
	if code, _ := post(t, nil, url, alertJSON("firing", "f1", "2026-12-05T08:00:00Z", `{"alertname":"A"}`)); code != 200 {
		t.Errorf("late copy: %d", code)
	}
	if n := lines(dir, "runs"); n != 0 {
		t.Errorf("a late copy of a resolved occurrence ran %d times", n)
	}
	if got := metric(t, a, `am_executor_skipped_total{reason="resolved"}`); got != 1 {
		t.Errorf("skipped resolved: %v, want 1", got)
	}
	post(t, nil, url, alertJSON("firing", "f1", "2026-12-05T09:00:00Z", `{"alertname":"A"}`))
	if n := lines(dir, "runs"); n != 1 {
		t.Errorf("the next occurrence ran %d times, want once", n)
	}
}

// TestKeys: two DiskFull alerts on db1 (two fingerprints) with by:
// [instance] and max 1 start one cleanup; exec{key=} does the same from a
// script; another host gets its own. The scripts run for firing alerts
// only: a resolve's own exec would start or meet max depending on whether
// the process it signalled had ended yet.
func TestKeys(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "amx.yml", fmt.Sprintf(`
routes:
  - name: by-label
    by: [instance]
    max: 1
    wait: false
    lua: |
      if alert.status ~= "firing" then return end
      exec("sh", "-c", 'echo "$1 $2" >> "$0/by"; exec sleep 1000', %[1]q, alert.labels.instance, alert.labels.mountpoint)
  - name: by-key
    max: 1
    wait: false
    lua: |
      if alert.status ~= "firing" then return end
      exec{"sh", "-c", 'echo "$1" >> "$0/key"; exec sleep 1000', %[1]q, alert.labels.mountpoint, key = alert.labels.instance}
`, dir))
	a := startAmx(t, "-f", cfg)
	url := "http://" + a.addr + "/"
	body := `{"status":"firing","alerts":[
{"status":"firing","fingerprint":"f1","startsAt":"2026-12-05T08:00:00Z","labels":{"instance":"db1","mountpoint":"/var"}},
{"status":"firing","fingerprint":"f2","startsAt":"2026-12-05T08:00:00Z","labels":{"instance":"db1","mountpoint":"/data"}},
{"status":"firing","fingerprint":"f3","startsAt":"2026-12-05T08:00:00Z","labels":{"instance":"db2","mountpoint":"/var"}}]}`
	if code, text := post(t, nil, url, body); code != 200 {
		t.Fatalf("%d %q", code, text)
	}
	runnertest.Eventually(t, "two cleanups per rule", func() bool { return lines(dir, "by") == 2 && lines(dir, "key") == 2 })
	if got := metric(t, a, `am_executor_skipped_total{reason="fingerover"}`); got != 2 {
		t.Errorf("skipped by max: %v, want 2 (db1's second alert, per rule)", got)
	}
	// Resolve signals the processes bound to the alerts that resolved.
	post(t, nil, url, `{"status":"resolved","alerts":[{"status":"resolved","fingerprint":"f1","startsAt":"2026-12-05T08:00:00Z","labels":{"instance":"db1"}},
{"status":"resolved","fingerprint":"f3","startsAt":"2026-12-05T08:00:00Z","labels":{"instance":"db2"}}]}`)
	runnertest.Eventually(t, "the processes ended", func() bool { return metric(t, a, "am_executor_processes_current") == 0 })
}

// TestCooldownAndRate: a cooldown per host holds a new occurrence back; a
// rate holds back the starts past its count, across hosts.
func TestCooldownAndRate(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "amx.yml", fmt.Sprintf(`
commands:
  - cmd: sh
    args: ["-c", 'echo "$AMX_ALERT_1_LABEL_instance" >> "$0/cool"', %[1]q]
    match_labels: {alertname: Cool}
    by: [instance]
    cooldown: 1h
  - cmd: sh
    args: ["-c", 'echo "$AMX_ALERT_1_LABEL_instance" >> "$0/rate"', %[1]q]
    match_labels: {alertname: Rate}
    by: [instance]
    rate: 2/1h
`, dir))
	a := startAmx(t, "-f", cfg)
	url := "http://" + a.addr + "/"
	for i, host := range []string{"h1", "h1", "h2"} {
		post(t, nil, url, alertJSON("firing", fmt.Sprint("c", i), fmt.Sprintf("2026-12-05T08:0%d:00Z", i), fmt.Sprintf(`{"alertname":"Cool","instance":%q}`, host)))
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "cool")); string(b) != "h1\nh2\n" {
		t.Errorf("cooldown: ran for %q, want h1 and h2 once each", b)
	}
	for i := range 3 {
		post(t, nil, url, alertJSON("firing", fmt.Sprint("r", i), "2026-12-05T08:00:00Z", fmt.Sprintf(`{"alertname":"Rate","instance":"h%d"}`, i)))
	}
	if n := lines(dir, "rate"); n != 2 {
		t.Errorf("rate 2/1h: %d starts, want 2", n)
	}
	if metric(t, a, `am_executor_skipped_total{reason="cooldown"}`) != 1 || metric(t, a, `am_executor_skipped_total{reason="rate"}`) != 1 {
		t.Errorf("skips: cooldown %v, rate %v; want 1 each", metric(t, a, `am_executor_skipped_total{reason="cooldown"}`),
			metric(t, a, `am_executor_skipped_total{reason="rate"}`))
	}
	a.waitLog(t, `msg="skipped: rate limit reached"`)
}

// TestStateSurvivesKill9: with state.path, once, cooldown, rate and the
// scripts' values outlive amx killed with SIGKILL, and the file locked by
// the first amx is refused to a second.
func TestStateSurvivesKill9(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "amx.yml", fmt.Sprintf(`
state:
  path: state.db
routes:
  - name: once
    once: true
    match_labels: {alertname: Once}
    lua: exec("sh", "-c", 'echo run >> "$0/once"', %[1]q)
  - name: cool
    cooldown: 1h
    by: [instance]
    match_labels: {alertname: Cool}
    lua: exec("sh", "-c", 'echo run >> "$0/cool"', %[1]q)
  - name: rate
    rate: 1/1h
    match_labels: {alertname: Rate}
    lua: exec("sh", "-c", 'echo run >> "$0/rate"', %[1]q)
  - name: count
    match_labels: {alertname: Count}
    lua: |
      local n = state.incr("reboots:" .. alert.labels.instance, 1, "24h")
      exec("sh", "-c", 'echo "$1" >> "$0/count"', %[1]q, tostring(n))
`, dir))
	send := func(a *amx, start string) {
		t.Helper()
		url := "http://" + a.addr + "/"
		for _, name := range []string{"Once", "Cool", "Rate", "Count"} {
			// The once alert is the same occurrence each round; the
			// others are new alerts, for the limits.
			fp, startsAt := "fp"+name, "2026-12-05T08:00:00Z"
			if name != "Once" {
				fp, startsAt = fp+start, "2026-12-05T08:00:0"+start+"Z"
			}
			if code, body := post(t, nil, url, alertJSON("firing", fp, startsAt, fmt.Sprintf(`{"alertname":%q,"instance":"h1"}`, name))); code != 200 {
				t.Errorf("%s: %d %q", name, code, body)
			}
		}
	}
	a := startAmx(t, "-f", cfg)
	send(a, "1")
	// A second amx on the same file fails to start, with a reason.
	outb, err := exec.Command(amxBin, "-l", "127.0.0.1:0", "-f", cfg).CombinedOutput()
	out := string(outb)
	if err == nil || !strings.Contains(out, "locked by another process") {
		t.Errorf("second amx on the state file: %v\n%s", err, out)
	}
	a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.done
	a.done <- nil // for the cleanup

	b := startAmx(t, "-f", cfg)
	send(b, "2")
	for name, want := range map[string]string{"once": "run\n", "cool": "run\n", "rate": "run\n", "count": "1\n2\n"} {
		if got, _ := os.ReadFile(filepath.Join(dir, name)); string(got) != want {
			t.Errorf("%s after kill -9: %q, want %q", name, got, want)
		}
	}
	b.waitLog(t, "state=\"bolt "+filepath.Join(dir, "state.db")+"\"")
}

// TestStateAPI: operators list and clear entries through the API and amx
// state, behind the webhook's credentials: "the host is fixed, let the
// cooldown go".
func TestStateAPI(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "secret", "s3cret\n")
	cfg := writeFile(t, dir, "amx.yml", fmt.Sprintf(`
auth:
  authorization:
    credentials_file: secret
commands:
  - cmd: sh
    args: ["-c", 'echo run >> "$0/runs"', %q]
    by: [instance]
    cooldown: 1h
`, dir))
	a := startAmx(t, "-f", cfg)
	url := "http://" + a.addr
	client := &http.Client{Transport: bearer("s3cret")}
	post(t, client, url+"/", alertJSON("firing", "f1", "2026-12-05T08:00:00Z", `{"instance":"db1"}`))

	resp, err := http.Get(url + "/api/v1/state")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET without credentials: %d, want 401", resp.StatusCode)
	}
	ls := func() string {
		t.Helper()
		out, err := exec.Command(amxBin, "state", "ls", "--url", url, "--bearer-token-file", filepath.Join(dir, "secret")).CombinedOutput()
		if err != nil {
			t.Fatalf("amx state ls: %v\n%s", err, out)
		}
		return string(out)
	}
	if out := ls(); !strings.Contains(out, "cooldown/cmd%20sh") || !strings.Contains(out, "/db1 ") {
		t.Errorf("amx state ls does not list the cooldown of db1:\n%s", out)
	}
	out, err := exec.Command(amxBin, "state", "rm", "--url", url, "--bearer-token-file", filepath.Join(dir, "secret"), "cooldown/").CombinedOutput()
	if err != nil || string(out) != "1 entries removed\n" {
		t.Errorf("amx state rm: %v %q", err, out)
	}
	post(t, client, url+"/", alertJSON("firing", "f2", "2026-12-05T09:00:00Z", `{"instance":"db1"}`))
	if n := lines(dir, "runs"); n != 2 {
		t.Errorf("after the cooldown was removed: %d runs, want 2", n)
	}
}

// bearer is a transport that sends a bearer token.
type bearer string

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(b))
	return http.DefaultTransport.RoundTrip(r)
}
