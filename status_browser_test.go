package main

// The status page in a real browser (Debian's chromium, driven by
// chromedp): live processes, runs and their output, hostile labels shown
// as text, no console errors, readable on a phone. With -screenshot it
// writes docs/status.png from the state it builds.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/amx-dev/amx/engine/history"
	"github.com/amx-dev/amx/runner/runnertest"
)

var screenshot = flag.Bool("screenshot", false, "write docs/status.png from the browser test")

// browserProblems collects what a page must never do: open a dialog, log
// an error, throw.
type browserProblems struct {
	mu   sync.Mutex
	list []string
}

func (b *browserProblems) listen(ev any) {
	var p string
	switch ev := ev.(type) {
	case *page.EventJavascriptDialogOpening:
		p = "dialog: " + ev.Message
	case *runtime.EventExceptionThrown:
		p = "exception: " + ev.ExceptionDetails.Text
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError {
			p = "console.error"
		}
	case *cdplog.EventEntryAdded:
		if ev.Entry.Level == cdplog.EntryLevelError {
			p = "console: " + ev.Entry.Text + " " + ev.Entry.URL
		}
	}
	if p != "" {
		b.mu.Lock()
		b.list = append(b.list, p)
		b.mu.Unlock()
	}
}

func (b *browserProblems) get() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.list...)
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

func TestStatusPageInBrowser(t *testing.T) {
	chromium := installed(t, "chromium", "chromium", "chromium-browser")
	dir := t.TempDir()
	writeFile(t, dir, "password", "s3cret\n")
	cfg := writeFile(t, dir, "amx.yml", `
auth:
  basic_auth:
    username: alertmanager
    password_file: password
routes:
  - name: restart-service
    match_labels: {alertname: ServiceDown}
    wait: false
    resolved_signal: SIGTERM
    lua: |
      if alert.status == "resolved" then return end
      exec{"sh", "-c", 'echo "restarting $1 on $2"; exec sleep 120', "restart", alert.labels.service, alert.labels.instance,
        key = alert.labels.instance, max = 2}
  - name: clean-disk
    match_labels: {alertname: DiskFull}
    lua: |
      exec("sh", "-c", 'echo "checking $1"; echo "rm: cannot remove $1/log/big: Permission denied" >&2; exit 1', "clean", alert.labels.mountpoint)
  - name: page-team
    match_labels: {severity: critical}
    lua: |
      if alert.labels.team == "none" then skip("no team") end
      exec{"sh", "-c", 'echo "paged $1"', "page", alert.labels.team, key = alert.labels.team, cooldown = "1h"}
commands:
  - cmd: sh
    args: ["-c", "echo notified"]
    match_labels: {alertname: Heartbeat}
`)
	a := startAmx(t, "-f", cfg)
	base := "http://" + a.addr
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("alertmanager:s3cret"))
	client := &http.Client{Transport: basic{"alertmanager", "s3cret"}}
	notify := func(fp, labels string) {
		t.Helper()
		want := 200
		if fp == "d1" {
			want = 500 // the failing route notifies on failure
		}
		if code, body := post(t, client, base+"/", alertJSON("firing", fp, "2026-12-05T08:00:00Z", labels)); code != want {
			t.Fatalf("%s: %d %s", fp, code, body)
		}
	}
	notify("a1", `{"alertname":"Heartbeat"}`)
	notify("d1", `{"alertname":"DiskFull","instance":"db1:9100","mountpoint":"/var"}`)
	notify("s1", `{"alertname":"ServiceDown","instance":"web1","service":"nginx","severity":"critical","team":"web"}`)
	notify("s2", `{"alertname":"ServiceDown","instance":"web2","service":"nginx","severity":"critical","team":"web"}`)
	notify("x1", `{"alertname":"ServiceDown","instance":"<script>alert(1)</script>","service":"\"><img src=x onerror=alert(2)>","team":"none","severity":"critical"}`)

	var ps history.ProcessList
	runnertest.Eventually(t, "three restarts run", func() bool {
		resp, err := client.Get(base + "/api/v1/processes")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&ps)
		return len(ps.Processes) == 3 && ps.Processes[2].Output != ""
	})

	problems := &browserProblems{}
	alloc, cancel := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.Headless, chromedp.WindowSize(1280, 900))...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(alloc, chromedp.WithListener(problems.listen))
	defer cancel()
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tab *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tab, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tab, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
			Headers: network.Headers{"Authorization": auth}})
		return err
	}))
	if err != nil {
		t.Fatal(err)
	}
	// Each step on its own deadline: a page that hangs (a dialog left
	// open) fails the test instead of stalling it.
	step := func(actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, deadline)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("browser: %v (problems seen: %q)", err, problems.get())
		}
	}

	step(chromedp.Navigate(base + "/status"))
	for _, p := range ps.Processes {
		pid := eval[string](t, ctx, fmt.Sprintf(`document.querySelector("#proc-%d .pid").textContent`, p.ID))
		if pid != strconv.Itoa(p.Pid) {
			t.Errorf("the live row of run %d shows pid %q, want %d", p.ID, pid, p.Pid)
		}
	}
	text := eval[string](t, ctx, `document.body.innerText`)
	for _, want := range []string{"<script>alert(1)</script>", `"><img src=x onerror=alert(2)>`, "restarting nginx on web1",
		"on (basic)", "clean-disk", "cooldown"} {
		if !strings.Contains(text, want) {
			t.Errorf("the page does not show %q as text", want)
		}
	}
	if n := eval[int](t, ctx, `document.querySelectorAll("script, img, iframe, object").length`); n != 0 {
		t.Errorf("the page holds %d script or img elements: a label became markup", n)
	}
	if *screenshot {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("docs", "status.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// A process that ends shows up among the runs with how it ended, and
	// its page shows its output.
	post(t, client, base+"/", alertJSON("resolved", "s1", "2026-12-05T08:00:00Z",
		`{"alertname":"ServiceDown","instance":"web1","service":"nginx","severity":"critical","team":"web"}`))
	first := ps.Processes[0]
	runnertest.Eventually(t, "the resolved restart ends", func() bool {
		step(chromedp.Navigate(base + "/status"))
		return eval[string](t, ctx, fmt.Sprintf(`(document.querySelector("#run-%d .exit") || {}).textContent`, first.ID)) == "SIGTERM"
	})
	if got := eval[int](t, ctx, fmt.Sprintf(`document.querySelectorAll("#proc-%d").length`, first.ID)); got != 0 {
		t.Errorf("the ended process is still among the live ones")
	}
	failed := eval[string](t, ctx, `document.querySelector("tr.failed a").getAttribute("href")`)
	if exit := eval[string](t, ctx, `document.querySelector("tr.failed .exit").textContent`); exit != "exit 1" {
		t.Errorf("the failed run shows %q, want exit 1", exit)
	}
	step(chromedp.Navigate(base + "/" + failed))
	if out := eval[string](t, ctx, `document.querySelector("pre.output").textContent`); !strings.Contains(out, "checking /var\n") ||
		!strings.Contains(out, "Permission denied") {
		t.Errorf("the run page shows output %q", out)
	}
	// The filter works without JavaScript: it is a form.
	step(chromedp.Navigate(base + "/status?outcome=failed"))
	if n := eval[int](t, ctx, `document.querySelectorAll("#runs tbody tr").length`); n != 1 {
		t.Errorf("filtered on failed: %d rows, want 1", n)
	}

	// A phone: nothing wider than the screen but the tables, which scroll
	// in their own box.
	step(chromedp.EmulateViewport(375, 812), chromedp.Navigate(base+"/status"))
	if w := eval[int](t, ctx, `document.documentElement.scrollWidth`); w > 375 {
		t.Errorf("at 375 px the page is %d px wide", w)
	}
	if size := eval[string](t, ctx, `getComputedStyle(document.body).fontSize`); size != "14px" {
		t.Errorf("at 375 px the text is %s, want 14px", size)
	}
	// Dark: dark background, light text.
	step(chromedp.Func(func(ctx context.Context, tab *chromedp.Target) error {
		_, err := cdp.Call(ctx, tab, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
		return err
	}), chromedp.Navigate(base+"/status"))
	bg := eval[string](t, ctx, `getComputedStyle(document.body).backgroundColor`)
	fg := eval[string](t, ctx, `getComputedStyle(document.body).color`)
	if bg != "rgb(13, 17, 23)" || fg != "rgb(230, 237, 243)" {
		t.Errorf("dark scheme: text %s on %s", fg, bg)
	}
	time.Sleep(100 * time.Millisecond) // late console messages of the last page
	if p := problems.get(); len(p) > 0 {
		t.Errorf("the browser reported: %q", p)
	}
}

// basic is a transport that sends basic credentials.
type basic struct{ user, password string }

func (b basic) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth(b.user, b.password)
	return http.DefaultTransport.RoundTrip(r)
}
