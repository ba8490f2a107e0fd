// Command bench measures amx against the limits of the machine it runs on,
// side by side in one run, and prints the results as a Markdown table.
//
// Run it from the repository root through bench/run.sh, which installs wrk
// when it is missing:
//
//	bench/run.sh [-d 10s] [-runs 3] [-o bench/results.md]
//
// Every throughput figure is paired with its limit measured in the same
// round (a bare Go server, a raw exec loop), so the ratios hold on a noisy
// machine; each is reported as min / median / max over the rounds.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	b := &bench{}
	flag.DurationVar(&b.duration, "d", 10*time.Second, "length of each throughput measurement")
	flag.IntVar(&b.runs, "runs", 3, "rounds of each throughput measurement")
	flag.IntVar(&b.conns, "c", 16, "concurrent connections (and exec loops)")
	flag.IntVar(&b.reloads, "reloads", 100, "reloads timed for the reload latency")
	sizes := flag.String("sizes", "1000,10000,50000", "alerts per notification for the large-group runs")
	out := flag.String("o", "bench/results.md", "write the Markdown table here as well")
	flag.StringVar(&b.only, "only", "", "run only one part: state (the state in memory against a file)")
	flag.StringVar(&b.old, "old", "", "a prometheus-am-executor binary to measure beside amx spawning `/bin/true` (row h)")
	flag.Parse()
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			fatal(fmt.Errorf("-sizes: %w", err))
		}
		b.sizes = append(b.sizes, n)
	}
	if err := b.run(); err != nil {
		fatal(err)
	}
	var table string
	if b.only == "state" {
		table = b.stateMarkdown()
	} else {
		table = b.markdown()
	}
	fmt.Print(table)
	if *out != "" {
		if err := os.WriteFile(*out, []byte(table), 0o644); err != nil {
			fatal(err)
		}
		fmt.Fprintln(os.Stderr, "bench: wrote", *out)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// bench holds the settings and, once run, the measurements.
type bench struct {
	duration time.Duration
	runs     int
	conns    int
	reloads  int
	sizes    []int
	only     string
	wrkRuns  int // runs of wrk so far, for new.lua's occurrences

	dir, amx, bare, rawexec, payload string
	old                              string // the predecessor's binary, if given
	// serverCPU and loadCPUs pin what is measured and the load generator
	// to different cores (taskset lists), or are empty on one core.
	serverCPU, loadCPUs string
	loadThreads         int

	// Throughput per contestant, one figure per round, and one per turn
	// of every round: ratios are taken turn by turn, between figures
	// measured a few seconds apart.
	rate, turnRate map[string][]float64
	// The server's own CPU per notification (µs), per round: the steadier
	// figure on a shared machine; kids is its children's, per round.
	cpu, kids map[string][]float64
	// Resident memory of amx (Lua route) after start and after the load.
	idleRSS, loadRSS []float64
	// Nanoseconds per evaluation for each example route, per count.
	luaNs map[string][]float64
	// Large groups: dispatch times and peak RSS per size.
	groupTime map[int][]time.Duration
	groupPeak map[int]float64
	// Reload latencies, sorted.
	reload []time.Duration
	// The state contestants: rates per round and per turn, and the
	// server's CPU per notification (µs) per round.
	stateRate, stateTurn, stateCPU map[string][]float64
	// Startup facts for the header.
	started time.Time
}

// Contestants of the throughput rounds, in the order they run.
const (
	bare      = "bare"
	classic   = "classic"
	luaReturn = "lua-return"
	luaVM     = "lua-vm"
	luaSkip   = "lua-skip"
	rawExec   = "raw-exec"
	spawnTrue = "spawn-true"
	// bareExec is bare with -exec: an executor cut to the bone.
	bareExec = "bare-exec"
	// oldExec is prometheus-am-executor running `/bin/true`, with -old.
	oldExec = "old-exec"
)

func (b *bench) run() error {
	b.started = time.Now()
	dir, err := os.MkdirTemp("", "amx-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b.dir = dir
	b.amx, b.bare, b.rawexec = filepath.Join(dir, "amx"), filepath.Join(dir, "bare"), filepath.Join(dir, "rawexec")
	b.loadThreads = 1
	if n := runtime.NumCPU(); n >= 2 {
		b.serverCPU, b.loadCPUs, b.loadThreads = "0", fmt.Sprintf("1-%d", n-1), min(n-1, 4)
		if n == 2 {
			b.loadCPUs = "1"
		}
	}
	progress("building amx, the bare server and the raw exec loop")
	for _, build := range [][]string{{"-o", b.amx, "."}, {"-o", b.bare, "./bench/bare"}, {"-o", b.rawexec, "./bench/rawexec"}} {
		cmd := exec.Command("go", append([]string{"build"}, build...)...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build %s: %w", build[len(build)-1], err)
		}
	}
	b.payload = "examples/payloads/firing-diskfull-two-alerts.json"
	if err := writeFile(filepath.Join(dir, "post.lua"), fmt.Sprintf(wrkScript, b.payload)); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, "new.lua"), fmt.Sprintf(wrkNewOccurrence, b.payload)); err != nil {
		return err
	}
	if b.only == "state" {
		return b.stateBench()
	}
	configs := map[string]string{
		classic: "commands:\n  - cmd: /bin/true\n    match_labels: {alertname: NoSuchAlert}\n",
		// The route of BenchmarkWebhook: it reads a label, and returns
		// since no alert of the payload has severity "page".
		luaReturn: "routes:\n  - name: page\n    lua: |\n      if alert.labels.severity ~= \"page\" then return end\n      exec(\"bin/page\", alert.labels.instance)\n",
		// The same decision after a local: no guard, so the script runs
		// in a Lua state for every alert.
		luaVM:   "routes:\n  - name: page\n    lua: |\n      local severity = alert.labels.severity\n      if severity == \"page\" then exec(\"bin/page\", alert.labels.instance) end\n",
		luaSkip: "routes:\n  - name: skip\n    lua: skip('bench')\n",
		// Every notification runs it, as /bin/true in the raw loop: no
		// max, and each notification a new occurrence (new.lua).
		spawnTrue: "commands:\n  - cmd: /bin/true\n",
	}
	for name, c := range configs {
		if err := writeFile(filepath.Join(dir, name+".yml"), c); err != nil {
			return err
		}
	}

	b.rate, b.turnRate, b.cpu, b.kids = map[string][]float64{}, map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
	for round := 1; round <= b.runs; round++ {
		if err := b.round(round); err != nil {
			return fmt.Errorf("round %d: %w", round, err)
		}
	}
	if err := b.lua(); err != nil {
		return err
	}
	if err := b.groups(); err != nil {
		return err
	}
	return b.reloadLatency()
}

// wrkScript makes wrk POST the recorded payload.
const wrkScript = `wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(%q, "rb"))
wrk.body = f:read("*a")
f:close()
`

// turns is how many parts each contestant's measurement of a round is cut
// into. The contestants take turns part by part, so that the machine's
// slow minutes hit them all alike.
const turns = 5

// round measures every contestant once, for b.duration each, in notifications
// (or execs) per second.
func (b *bench) round(round int) error {
	servers := map[string]*server{}
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()
	names := []string{bare, classic, luaReturn, luaVM, luaSkip, rawExec, spawnTrue, bareExec}
	if b.old != "" {
		names = append(names, oldExec)
	}
	for _, name := range names {
		var s *server
		var err error
		switch name {
		case rawExec:
			continue // not a server
		case bare:
			s, err = b.start(b.bare)
		case bareExec:
			s, err = b.start(b.bare, "-exec", "/bin/true")
		case oldExec:
			s, err = b.start(b.old, "/bin/true")
		default:
			s, err = b.start(b.amx, "-f", filepath.Join(b.dir, name+".yml"))
		}
		if err != nil {
			return err
		}
		servers[name] = s
	}
	b.idleRSS = append(b.idleRSS, servers[luaSkip].rss("VmRSS"))
	for _, s := range servers {
		if _, err := b.wrk(s.url, time.Second); err != nil { // warm up
			return err
		}
	}
	// measure returns the rate, the server's CPU per request in µs and
	// that of its children per request.
	measure := func(name string, d time.Duration) (rate, cpu, kids float64, err error) {
		if name == rawExec {
			out, err := pinned(b.serverCPU, b.rawexec, "-c", strconv.Itoa(b.conns), "-d", d.String()).Output()
			if err != nil {
				return 0, 0, 0, fmt.Errorf("rawexec: %w", err)
			}
			if _, err := fmt.Sscan(string(out), &rate, &cpu, &kids); err != nil {
				return 0, 0, 0, fmt.Errorf("rawexec: %q: %w", out, err)
			}
			return rate, cpu, kids, nil
		}
		s := servers[name]
		return s.perRequest(d, func() (float64, error) {
			if name == spawnTrue || name == bareExec || name == oldExec {
				return b.wrkScript(s.url, d, "new.lua")
			}
			return b.wrk(s.url, d)
		})
	}
	sum, cpu, kids := map[string]float64{}, map[string]float64{}, map[string]float64{}
	for turn := range turns {
		for i := range names {
			name := names[(i+turn)%len(names)] // and each goes first in turn
			rate, used, children, err := measure(name, b.duration/turns)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			sum[name] += rate
			cpu[name] += used
			kids[name] += children
			b.turnRate[name] = append(b.turnRate[name], rate)
		}
	}
	for _, name := range names {
		b.rate[name] = append(b.rate[name], sum[name]/turns)
		b.cpu[name] = append(b.cpu[name], cpu[name]/turns)
		b.kids[name] = append(b.kids[name], kids[name]/turns)
		progress("round %d/%d %-10s %8.0f/s %6.0f µs CPU each", round, b.runs, name, sum[name]/turns, cpu[name]/turns)
	}
	b.loadRSS = append(b.loadRSS, servers[luaSkip].rss("VmRSS"))
	return nil
}

var (
	wrkRate   = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkErrors = regexp.MustCompile(`(Non-2xx or 3xx responses|Socket errors):.*`)
)

// wrk loads url for d and returns the requests answered per second. Any
// answer that is not 2xx, or any socket error, fails the measurement.
func (b *bench) wrk(url string, d time.Duration) (float64, error) {
	return b.wrkScript(url, d, "post.lua")
}

// wrkDuration is how long wrk runs when asked for d: it counts whole
// seconds, at least one.
func wrkDuration(d time.Duration) time.Duration {
	return max(time.Second, d.Round(time.Second))
}

// wrkScript is wrk with another of the scripts in b.dir, which gets the
// number of this run of wrk as its argument.
func (b *bench) wrkScript(url string, d time.Duration, script string) (float64, error) {
	b.wrkRuns++
	out, err := pinned(b.loadCPUs, "wrk", "-t", strconv.Itoa(min(b.loadThreads, b.conns)), "-c", strconv.Itoa(b.conns),
		"-d", fmt.Sprintf("%ds", int(wrkDuration(d).Seconds())), "-s", filepath.Join(b.dir, script), url,
		"--", strconv.Itoa(b.wrkRuns)).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("wrk: %w: %s", err, out)
	}
	return parseWrk(out)
}

// parseWrk reads the rate from wrk's report; errors or answers other than
// 2xx and 3xx fail the measurement.
func parseWrk(out []byte) (float64, error) {
	if m := wrkErrors.Find(out); m != nil {
		return 0, fmt.Errorf("wrk: %s", m)
	}
	m := wrkRate.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("wrk printed no rate: %s", out)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// server is a server under test, started on a free loopback port.
type server struct {
	cmd *exec.Cmd
	url string
}

func (b *bench) start(bin string, args ...string) (*server, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := pinned(b.serverCPU, bin, append([]string{"-l", addr}, args...)...)
	// Logs go to /dev/null, but amx still formats and writes them: their
	// cost is in the figures.
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, url: "http://" + addr + "/"}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return s, nil
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("%s did not listen on %s", filepath.Base(bin), addr)
		}
	}
}

func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

// rss reads a memory figure (VmRSS, VmHWM) of the server in MiB.
func (s *server) rss(field string) float64 {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				fatal(err)
			}
			return kb / 1024
		}
	}
	fatal(fmt.Errorf("no %s in /proc/%d/status", field, s.cmd.Process.Pid))
	return 0
}

// pinned is a command bound to the CPUs of a taskset list, or free when the
// list is empty. The process's pid is the command's: taskset execs it.
func pinned(cpus, name string, args ...string) *exec.Cmd {
	if cpus == "" {
		return exec.Command(name, args...)
	}
	return exec.Command("taskset", append([]string{"-c", cpus, name}, args...)...)
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func writeFile(name, content string) error {
	return os.WriteFile(name, []byte(content), 0o644)
}

var benchLine = regexp.MustCompile(`^Benchmark(\w+)(?:-\d+)?\s+\d+\s+([0-9.]+) ns/op`)

// lua runs the Lua route benchmarks of luaapi: one evaluation of each
// example route per op, on one goroutine, so evaluations/s/core is 1e9/ns.
func (b *bench) lua() error {
	progress("Lua route evaluations (go test -bench Route ./luaapi)")
	out, err := exec.Command("go", "test", "-run", "^$", "-bench", "^BenchmarkRoute", "-count", "5",
		"-cpu", "1", "./luaapi").CombinedOutput()
	if err != nil {
		return fmt.Errorf("go test -bench: %w: %s", err, out)
	}
	b.luaNs = map[string][]float64{}
	for line := range strings.Lines(string(out)) {
		if m := benchLine.FindStringSubmatch(line); m != nil {
			ns, _ := strconv.ParseFloat(m[2], 64)
			b.luaNs[m[1]] = append(b.luaNs[m[1]], ns)
		}
	}
	if len(b.luaNs) == 0 {
		return fmt.Errorf("no benchmark results in: %s", out)
	}
	return nil
}

// groups times large notifications through a fresh amx each: decode, one
// Lua route evaluated for every alert and a classic command that does not
// match, nothing spawned. The peak RSS is the process's high-water mark.
func (b *bench) groups() error {
	config := filepath.Join(b.dir, "groups.yml")
	err := writeFile(config, `max_body_bytes: 1073741824
commands:
  - cmd: /bin/true
    match_labels: {alertname: NoSuchAlert}
routes:
  - name: page
    match_labels: {alertname: DiskFull}
    lua: |
      local severity = alert.labels.severity
      if severity == "page" then exec("/bin/true", alert.labels.instance) end
`)
	if err != nil {
		return err
	}
	b.groupTime, b.groupPeak = map[int][]time.Duration{}, map[int]float64{}
	for _, n := range b.sizes {
		body := largeGroup(n)
		progress("large group: %d alerts, %.1f MB", n, float64(len(body))/1e6)
		s, err := b.start(b.amx, "-f", config)
		if err != nil {
			return err
		}
		for range b.runs {
			start := time.Now()
			resp, err := http.Post(s.url, "application/json", bytes.NewReader(body))
			if err != nil {
				s.stop()
				return err
			}
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				s.stop()
				return fmt.Errorf("%d alerts: %s: %s", n, resp.Status, answer)
			}
			b.groupTime[n] = append(b.groupTime[n], time.Since(start))
		}
		b.groupPeak[n] = s.rss("VmHWM")
		s.stop()
	}
	return nil
}

// largeGroup is a firing notification of n DiskFull alerts on n instances,
// each with a 640-byte description: about 1 kB an alert, 50 MB for 50,000,
// as large groups from Alertmanager are (the was 46 MB).
func largeGroup(n int) []byte {
	var buf bytes.Buffer
	buf.WriteString(`{"receiver":"amx","status":"firing","alerts":[`)
	for i := range n {
		if i > 0 {
			buf.WriteByte(',')
		}
		fmt.Fprintf(&buf, `{"status":"firing","labels":{"alertname":"DiskFull","device":"/dev/sda1","instance":"host-%06d:9100","job":"node","mountpoint":"/","severity":"warning"},`+
			`"annotations":{"summary":"Disk / on host-%06d is 95%% full","runbook_url":"https://runbooks.example.com/diskfull","description":"%s"},`+
			`"startsAt":"2026-11-25T10:00:00.000Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus:9090/graph?g0.expr=disk_used_ratio%%3E0.95","fingerprint":"%016x"}`,
			i, i, strings.Repeat("x", 640), uint64(i)*0x9e3779b97f4a7c15)
	}
	buf.WriteString(`],"groupLabels":{"alertname":"DiskFull"},"commonLabels":{"alertname":"DiskFull","job":"node","severity":"warning"},` +
		`"commonAnnotations":{},"externalURL":"http://alertmanager:9093","version":"4","groupKey":"{}:{alertname=\"DiskFull\"}","truncatedAlerts":0}`)
	return buf.Bytes()
}

// reloadLatency measures from saving a script (an editor's rename over the
// old file) to the new rules answering webhooks, through the real binary's
// watcher. Each version of the script fails with its own message, which
// comes back in the 500 answer.
func (b *bench) reloadLatency() error {
	progress("reload latency: %d saves", b.reloads)
	dir := filepath.Join(b.dir, "reload")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	script := func(v int) error {
		tmp := filepath.Join(dir, ".r.lua.swp")
		if err := writeFile(tmp, fmt.Sprintf("error('v%d', 0)\n", v)); err != nil {
			return err
		}
		return os.Rename(tmp, filepath.Join(dir, "r.lua"))
	}
	if err := script(0); err != nil {
		return err
	}
	config := filepath.Join(dir, "amx.yml")
	if err := writeFile(config, "routes:\n  - name: r\n    script: r.lua\n    retry_on_script_error: true\n"); err != nil {
		return err
	}
	s, err := b.start(b.amx, "-f", config)
	if err != nil {
		return err
	}
	defer s.stop()
	body, err := os.ReadFile(b.payload)
	if err != nil {
		return err
	}
	answers := func(want string) (bool, error) {
		resp, err := http.Post(s.url, "application/json", bytes.NewReader(body))
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		answer, err := io.ReadAll(resp.Body)
		return strings.HasSuffix(string(answer), ": "+want+"\n"), err
	}
	for i := 1; i <= b.reloads; i++ {
		start := time.Now()
		if err := script(i); err != nil {
			return err
		}
		for {
			ok, err := answers(fmt.Sprint("v", i))
			if err != nil {
				return err
			}
			if ok {
				break
			}
			if time.Since(start) > 10*time.Second {
				return errors.New("reload: the new script never answered")
			}
			time.Sleep(time.Millisecond)
		}
		b.reload = append(b.reload, time.Since(start))
	}
	slices.Sort(b.reload)
	return nil
}

// stats is min, median and max.
type stats struct{ min, med, max float64 }

// The table cells: min / **median** / max of rates, of µs and of ratios.
func (s stats) rates() string {
	return fmt.Sprintf("%s / **%s** / %s", thousands(s.min), thousands(s.med), thousands(s.max))
}
func (s stats) micros() string { return fmt.Sprintf("%.0f / **%.0f** / %.0f", s.min, s.med, s.max) }
func (s stats) ratio() string  { return fmt.Sprintf("%.2f / **%.2f** / %.2f", s.min, s.med, s.max) }

func summarize(xs []float64) stats {
	s := slices.Clone(xs)
	slices.Sort(s)
	return stats{s[0], s[len(s)/2], s[len(s)-1]}
}

// ratios divides each round's figure by the same round's limit.
func ratios(xs, limits []float64) stats {
	r := make([]float64, len(xs))
	for i := range xs {
		r[i] = xs[i] / limits[i]
	}
	return summarize(r)
}

func (b *bench) markdown() string {
	var w strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&w, "### amx benchmark, %s\n\n", b.started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&w, "Machine: %s, %d cores, %s memory, %s, %s. Load: wrk, %d connections, %s per contestant and round "+
		"in %d turns taken in rotation, %d rounds; the server under test on core %s, wrk on %s; figures are min / median / max, "+
		"of the rounds for rates and of the turns for ratios (each contestant against its limit in the same turn).\n\n",
		host, runtime.NumCPU(), memTotal(), kernel(), runtime.Version(), b.conns, b.duration, turns, b.runs, or(b.serverCPU, "any"), or(b.loadCPUs, "any"))

	rate := func(xs []float64) string { return summarize(xs).rates() }
	ratio := func(x, limit string) string { return ratios(b.turnRate[x], b.turnRate[limit]).ratio() }
	us := func(name string) string { return summarize(b.cpu[name]).micros() }
	w.WriteString("| throughput (2-alert recorded payload) | per second | server CPU per notification (or exec), µs | ratio to the limit | target |\n|---|---|---|---|---|\n")
	row := func(label, name, ratioText, target string) {
		fmt.Fprintf(&w, "| %s | %s | %s | %s | %s |\n", label, rate(b.rate[name]), us(name), ratioText, target)
	}
	row("(a) bare Go server: read + JSON decode (the limit)", bare, "1", "")
	row("(b) amx classic, command not matching", classic, "b/a "+ratio(classic, bare), "")
	row("(c) amx, one Lua route per alert that reads a label and returns (a guard, decided in Go)", luaReturn, "c/b "+ratio(luaReturn, classic), "≥ 0.9")
	row("(c′) amx, the same rule as a `local` and an `if` around `exec` (run in Lua)", luaVM, "c′/b "+ratio(luaVM, classic), "≥ 0.9")
	row("(d) amx, one Lua route per alert that is `skip()` (a guard)", luaSkip, "d/b "+ratio(luaSkip, classic), "≥ 0.9")
	row("(e) raw Go loop exec'ing `/bin/true` (the limit; its own CPU, its children's below the table)", rawExec, "1", "")
	row("(f) amx classic, each notification (a new occurrence) spawns `/bin/true`", spawnTrue, "f/e "+ratio(spawnTrue, rawExec), "≥ 0.95")
	row("(g) bare Go server that runs `/bin/true` per notification through `os/exec`, output captured (the old executor's shape, no guarantees)",
		bareExec, "g/e "+ratio(bareExec, rawExec)+"; f/g "+ratio(spawnTrue, bareExec), "")
	if b.old != "" {
		row("(h) prometheus-am-executor, the predecessor (`-old`), spawning `/bin/true` per notification",
			oldExec, "h/e "+ratio(oldExec, rawExec)+"; f/h "+ratio(spawnTrue, oldExec), "")
	}
	// A server that answered as cheaply as (a) and spawned as cheaply as
	// (e) would spend 1/a + 1/e per notification.
	ceiling := make([]float64, b.runs)
	for i := range ceiling {
		ceiling[i] = b.rate[bare][i] / (b.rate[bare][i] + b.rate[rawExec][i])
	}
	c := summarize(ceiling)
	fmt.Fprintf(&w, "\nThe ceiling for f/e: a server that answered as cheaply as (a) and spawned as cheaply as (e) would reach a/(a+e) = %.2f / **%.2f** / %.2f.\n\n",
		c.min, c.med, c.max)
	// The children are the same /bin/true; their CPU tells how fast the
	// machine ran in each contestant's turns.
	fmt.Fprintf(&w, "The children's CPU per exec, the same `/bin/true` for all: (e) %s µs, (f) %s µs, (g) %s µs",
		summarize(b.kids[rawExec]).micros(), summarize(b.kids[spawnTrue]).micros(), summarize(b.kids[bareExec]).micros())
	if b.old != "" {
		fmt.Fprintf(&w, ", (h) %s µs", summarize(b.kids[oldExec]).micros())
	}
	w.WriteString("; so f/e ≈ (e's own + children) / (f's own + children).\n\n")

	w.WriteString("\n| Lua route evaluations, one core (`go test -bench Route ./luaapi`, 5 counts) | per second | target |\n|---|---|---|\n")
	for _, name := range slices.Sorted(maps.Keys(b.luaNs)) {
		per := make([]float64, len(b.luaNs[name]))
		for i, ns := range b.luaNs[name] {
			per[i] = 1e9 / ns
		}
		fmt.Fprintf(&w, "| %s | %s | ≥ 200,000 |\n", name, rate(per))
	}

	w.WriteString("\n| large group: one Lua route per alert, nothing spawned | JSON | dispatch time | peak RSS |\n|---|---|---|---|\n")
	for _, n := range b.sizes {
		ms := make([]float64, len(b.groupTime[n]))
		for i, d := range b.groupTime[n] {
			ms[i] = float64(d) / 1e6
		}
		s := summarize(ms)
		fmt.Fprintf(&w, "| %s alerts | %.1f MB | %.0f / **%.0f** / %.0f ms | %.0f MiB |\n",
			thousands(float64(n)), float64(len(largeGroup(n)))/1e6, s.min, s.med, s.max, b.groupPeak[n])
	}

	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	r := b.reload
	fmt.Fprintf(&w, "\n| other | figure |\n|---|---|\n")
	fmt.Fprintf(&w, "| reload latency, script saved → new rules answering (%d saves) | p50 %.1f ms, p99 %.1f ms, max %.1f ms |\n",
		len(r), ms(r[len(r)/2]), ms(r[len(r)*99/100]), ms(r[len(r)-1]))
	idle, load := summarize(b.idleRSS), summarize(b.loadRSS)
	fmt.Fprintf(&w, "| amx RSS after start (Lua route config) | %.1f / **%.1f** / %.1f MiB |\n", idle.min, idle.med, idle.max)
	fmt.Fprintf(&w, "| amx RSS after a round of load | %.1f / **%.1f** / %.1f MiB |\n", load.min, load.med, load.max)
	return w.String()
}

func or(s, otherwise string) string {
	if s == "" {
		return otherwise
	}
	return s
}

// thousands formats a count with thousands separators.
func thousands(x float64) string {
	s := strconv.FormatInt(int64(x+0.5), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func memTotal() string {
	meminfo, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "?"
	}
	var kb float64
	fmt.Sscanf(strings.TrimPrefix(string(meminfo), "MemTotal:"), "%f", &kb)
	return fmt.Sprintf("%.1f GiB", kb/(1<<20))
}

func kernel() string {
	release, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return runtime.GOOS
	}
	return "Linux " + strings.TrimSpace(string(release))
}
