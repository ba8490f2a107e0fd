package main

// End-to-end tests of replicas: two amx binaries sharing their state in a
// real redis-server.

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/amx-dev/amx/engine/history"
	"github.com/amx-dev/amx/engine/state/statetest"
	"github.com/amx-dev/amx/runner/runnertest"
)

// redisConfig writes dir/amx.yml: the state in Redis at addr, with more
// settings of state.redis (lines of its section), and then config.
func redisConfig(t *testing.T, dir, addr, settings, config string) string {
	t.Helper()
	return writeFile(t, dir, "amx.yml", fmt.Sprintf("state:\n  redis:\n    address: %q\n", addr)+settings+config)
}

// TestReplicas: the same notification sent to both replicas at once runs
// its action once, and both answer 200; max: 1 holds across replicas under
// notifications split across both; a resolve that lands on the replica
// that does not run the process signals it where it runs.
func TestReplicas(t *testing.T) {
	addr := statetest.StartRedis(t)
	dir := t.TempDir()
	cfg := redisConfig(t, dir, addr, "", fmt.Sprintf(`
commands:
  - cmd: sh
    args: ["-c", 'echo "$AMX_ALERT_1_FINGERPRINT" >> "$0/once"', %[1]q]
    match_labels: {alertname: Once}
  - cmd: sh
    args: ["-c", 'trap "echo usr1 >> $0/signalled; exit 0" USR1; echo $$ >> "$0/long"; while :; do sleep 0.05; done', %[1]q]
    match_labels: {alertname: Long}
    max: 1
    by: [instance]
    wait: false
    resolved_signal: SIGUSR1
`, dir))
	a, b := startAmx(t, "-f", cfg), startAmx(t, "-f", cfg)
	if !strings.Contains(a.Logs(), `state="redis `+addr+`"`) {
		t.Errorf("the startup line does not name the backend:\n%s", a.Logs())
	}
	urls := []string{"http://" + a.addr + "/", "http://" + b.addr + "/"}

	// One notification, to both replicas at once: one run.
	once := alertJSON("firing", "f1", "2026-12-05T08:00:00Z", `{"alertname":"Once"}`)
	answers := []<-chan answer{postAsync(urls[0], once), postAsync(urls[1], once)}
	for i, c := range answers {
		if got := <-c; got.code != 200 {
			t.Errorf("replica %d: %d %q", i, got.code, got.body)
		}
	}
	if n := lines(dir, "once"); n != 1 {
		t.Errorf("the action ran %d times across the replicas, want once", n)
	}

	// 100 notifications for one host, new occurrences split across
	// both: one process runs.
	var wg sync.WaitGroup
	for i := range 100 {
		body := alertJSON("firing", fmt.Sprintf("L%02d", i), fmt.Sprintf("2026-12-05T08:%02d:00Z", i%60),
			`{"alertname":"Long","instance":"db1"}`)
		wg.Go(func() {
			if got := tryPost(nil, urls[i%2], body); got.code != 200 {
				t.Errorf("notification %d: %d %q", i, got.code, got.body)
			}
		})
	}
	wg.Wait()
	runnertest.Eventually(t, "the process", func() bool { return lines(dir, "long") == 1 })
	skipped := metric(t, a, `am_executor_skipped_total{reason="fingerover"}`) + metric(t, b, `am_executor_skipped_total{reason="fingerover"}`)
	if skipped != 99 {
		t.Errorf("skipped by max across replicas: %v, want 99", skipped)
	}

	// The resolve of the alert it runs for, sent to both replicas: the one
	// that runs it signals it, whichever got the resolve first.
	b1, _ := os.ReadFile(filepath.Join(dir, "long"))
	runner := a
	if metric(t, b, "am_executor_processes_current") == 1 {
		runner = b
	}
	other := map[*amx]*amx{a: b, b: a}[runner]
	// Each replica shows its own processes, and says so.
	for r, want := range map[*amx]int{runner: 1, other: 0} {
		var ps history.ProcessList
		getJSON(t, "http://"+r.addr+"/api/v1/processes", &ps)
		if len(ps.Processes) != want || want == 1 && strconv.Itoa(ps.Processes[0].Pid) != strings.TrimSpace(string(b1)) ||
			!strings.HasSuffix(ps.Instance, r.addr) {
			t.Errorf("replica %s lists %+v, want %d processes", r.addr, ps, want)
		}
	}
	if _, page := get(t, "http://"+other.addr+"/status"); !strings.Contains(page, "the processes and runs shown are this replica") {
		t.Errorf("the status page of a replica does not say that it shows its own processes:\n%s", page)
	}
	m := regexp.MustCompile(`msg=started name=commands\[1\] cmd=sh fingerprint=(L\d\d)`).FindStringSubmatch(runner.Logs())
	if m == nil {
		t.Fatalf("no start of the long process in the logs of the replica that runs it (pid %s)", strings.TrimSpace(string(b1)))
	}
	start := time.Now()
	post(t, nil, "http://"+other.addr+"/", alertJSON("resolved", m[1], "2026-12-05T08:00:00Z", `{"alertname":"Long","instance":"db1"}`))
	runnertest.Eventually(t, "the process signalled through the other replica", func() bool { return lines(dir, "signalled") == 1 })
	t.Logf("a resolve sent to the other replica reached the process in %v", time.Since(start).Round(time.Millisecond))
}

// TestRedisOutage: while Redis does not answer (paused with SIGSTOP, so
// that its data survives) nothing starts, the answers are 503, /-/ready
// fails and the errors are counted; once Redis is back, Alertmanager's
// retries run the action, once.
func TestRedisOutage(t *testing.T) {
	bin := alertmanagerBinary(t)
	r := statetest.NewRedis(t, false)
	dir := t.TempDir()
	cfg := redisConfig(t, dir, r.Addr, "    timeout: 300ms\n", fmt.Sprintf(`
commands:
  - cmd: sh
    args: ["-c", 'echo run >> "$0/runs"', %q]
`, dir))
	a := startAmx(t, "-f", cfg)
	am := startAlertmanager(t, bin, dir, a.addr, "")
	r.Pause()
	postAlerts(t, am, map[string]any{"labels": map[string]string{"alertname": "AmxOutage", "instance": "host1"},
		"startsAt": time.Now().UTC().Format(time.RFC3339Nano)})
	runnertest.Eventually(t, "503s during the outage", func() bool {
		return metric(t, a, `am_executor_notifications_total{code="503",status="firing"}`) >= 2
	})
	if n := lines(dir, "runs"); n != 0 {
		t.Errorf("%d runs without a claim", n)
	}
	if resp, err := http.Get("http://" + a.addr + "/-/ready"); err != nil || resp.StatusCode != 503 {
		t.Errorf("/-/ready during the outage: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if metric(t, a, `am_executor_state_errors_total{op="admit"}`) < 1 {
		t.Error("the failed admissions are not counted")
	}
	r.Resume()
	runnertest.Eventually(t, "the retry answered 200", func() bool {
		return metric(t, a, `am_executor_notifications_total{code="200",status="firing"}`) >= 1
	})
	if n := lines(dir, "runs"); n != 1 {
		t.Errorf("after the outage the action ran %d times, want once", n)
	}
}

// TestAlertmanagerClusterReplicas: two real Alertmanagers, each sending to
// its own amx replica, the replicas sharing one Redis; the worst case for
// copies. Clustered, the Alertmanagers suppress most second sends through
// their gossip; partitioned (started without --cluster.peer, which is what
// a partition looks like from amx's side), every notification reaches
// both replicas. Either way each occurrence's action runs exactly once,
// and its resolve signals the process on whichever replica runs it.
func TestAlertmanagerClusterReplicas(t *testing.T) {
	bin := alertmanagerBinary(t)
	for _, clustered := range []bool{true, false} {
		name := map[bool]string{true: "clustered", false: "partitioned"}[clustered]
		t.Run(name, func(t *testing.T) {
			addr := statetest.StartRedis(t)
			dir := t.TempDir()
			cfg := redisConfig(t, dir, addr, "", fmt.Sprintf(`
commands:
  - cmd: sh
    args: ["-c", 'trap "echo usr1 >> $0/signalled; exit 0" USR1; echo $$ >> "$0/runs"; while :; do sleep 0.05; done', %q]
    wait: false
    resolved_signal: SIGUSR1
`, dir))
			a1, a2 := startAmx(t, "-f", cfg), startAmx(t, "-f", cfg)
			peer1, peer2 := freeAddr(t), freeAddr(t)
			for _, d := range []string{"am1", "am2"} {
				if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			cluster1 := []string{"--cluster.listen-address=" + peer1, "--cluster.advertise-address=" + peer1, "--cluster.peer-timeout=1s"}
			cluster2 := []string{"--cluster.listen-address=" + peer2, "--cluster.advertise-address=" + peer2, "--cluster.peer-timeout=1s"}
			if clustered {
				cluster2 = append(cluster2, "--cluster.peer="+peer1)
			}
			am1 := startAlertmanagerRepeating(t, bin, filepath.Join(dir, "am1"), a1.addr, "", "1h", cluster1...)
			am2 := startAlertmanagerRepeating(t, bin, filepath.Join(dir, "am2"), a2.addr, "", "1h", cluster2...)

			// The same alert, with the same startsAt, to both.
			startsAt := time.Now().UTC().Add(-time.Minute)
			alert := func(endsAt time.Time) map[string]any {
				a := map[string]any{"labels": map[string]string{"alertname": "AmxCluster", "instance": "host1"},
					"startsAt": startsAt.Format(time.RFC3339Nano)}
				if !endsAt.IsZero() {
					a["endsAt"] = endsAt.Format(time.RFC3339Nano)
				}
				return a
			}
			postAlerts(t, am1, alert(time.Time{}))
			postAlerts(t, am2, alert(time.Time{}))
			notified := func(a *amx) float64 { // 0, not -1, before the first
				return max(0, metric(t, a, `am_executor_notifications_total{code="200",status="firing"}`))
			}
			runnertest.Eventually(t, "the first notification answered", func() bool { return notified(a1)+notified(a2) >= 1 })
			if !clustered {
				runnertest.Eventually(t, "both replicas notified", func() bool { return notified(a1) >= 1 && notified(a2) >= 1 })
			}
			runnertest.Eventually(t, "the process running", func() bool { return lines(dir, "runs") >= 1 })
			t.Logf("%s: firing notifications answered: %v by amx 1, %v by amx 2", name, notified(a1), notified(a2))

			end := time.Now().UTC()
			postAlerts(t, am1, alert(end))
			postAlerts(t, am2, alert(end))
			runnertest.Eventually(t, "the process signalled", func() bool { return lines(dir, "signalled") == 1 })
			if n := lines(dir, "runs"); n != 1 {
				t.Errorf("the action ran %d times across the replicas, want once", n)
			}
		})
	}
}

// TestReplicaKilled: a replica killed with kill -9 stops renewing its
// leases; within lease_ttl the other replica may start the action its
// process held, while that process still runs on the dead replica's host.
func TestReplicaKilled(t *testing.T) {
	addr := statetest.StartRedis(t)
	dir := t.TempDir()
	cfg := redisConfig(t, dir, addr, "    lease_ttl: 1s\n", fmt.Sprintf(`
commands:
  - cmd: sh
    args: ["-c", 'echo $$ >> "$0/runs"; exec sleep 1000', %q]
    max: 1
    by: [instance]
    wait: false
`, dir))
	a, b := startAmx(t, "-f", cfg), startAmx(t, "-f", cfg)
	post(t, nil, "http://"+a.addr+"/", alertJSON("firing", "f1", "2026-12-05T08:00:00Z", `{"instance":"db1"}`))
	runnertest.Eventually(t, "the first process", func() bool { return lines(dir, "runs") == 1 })
	orphan := runnertest.ReadInt(t, filepath.Join(dir, "runs"))
	t.Cleanup(func() { syscall.Kill(-orphan, syscall.SIGKILL) })
	post(t, nil, "http://"+b.addr+"/", alertJSON("firing", "f2", "2026-12-05T08:01:00Z", `{"instance":"db1"}`))
	if n := lines(dir, "runs"); n != 1 {
		t.Fatalf("max: 1 across replicas while both live: %d processes", n)
	}
	a.cmd.Process.Signal(syscall.SIGKILL)
	err := <-a.done
	a.done <- err // for the cleanup
	killed := time.Now()
	for i := 3; lines(dir, "runs") < 2; i++ {
		if time.Since(killed) > deadline {
			t.Fatal("the other replica never started the action after the lease's TTL")
		}
		post(t, nil, "http://"+b.addr+"/", alertJSON("firing", fmt.Sprint("f", i), fmt.Sprintf("2026-12-05T08:%02d:00Z", i), `{"instance":"db1"}`))
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the dead replica's lease expired, and the other started the action, %v after kill -9", time.Since(killed).Round(10*time.Millisecond))
	// As documented: the dead replica's process outlives it.
	if runnertest.Gone(orphan) {
		t.Errorf("the dead replica's process %d is gone: update docs/replicas.md", orphan)
	}
}

// TestReplicasUnderLoad: 10,000 notifications over both replicas, each of
// 5,000 occurrences sent to both at once, as two partitioned Alertmanagers
// would, in two rounds: every action runs exactly once, every answer is
// 200, and the second round leaves the replicas with the goroutines of the
// first, and its file descriptors plus those of the Redis connections
// their pools opened in the second (a pool grows with the peak of
// concurrent calls, which the first round need not have reached).
func TestReplicasUnderLoad(t *testing.T) {
	addr := statetest.StartRedis(t)
	dir := t.TempDir()
	cfg := redisConfig(t, dir, addr, "", fmt.Sprintf(`
routes:
  - name: note
    lua: exec("sh", "-c", 'echo "$1" >> "$0/runs"', %q, alert.fingerprint)
`, dir))
	replicas := []*amx{startAmx(t, "-f", cfg), startAmx(t, "-f", cfg)}
	client := &http.Client{Timeout: deadline, Transport: &http.Transport{MaxIdleConnsPerHost: 50}}
	var mu sync.Mutex
	wrong := 0
	round := func(from, to int) {
		jobs := make(chan int)
		var wg sync.WaitGroup
		for range 25 {
			wg.Go(func() {
				for i := range jobs {
					body := alertJSON("firing", fmt.Sprintf("%016x", i), "2026-12-05T08:00:00Z", `{"alertname":"Load"}`)
					var both sync.WaitGroup
					for _, a := range replicas {
						both.Go(func() {
							if got := tryPost(client, "http://"+a.addr+"/", body); got.code != 200 {
								mu.Lock()
								if wrong++; wrong <= 5 {
									t.Errorf("occurrence %d: %d %q", i, got.code, got.body)
								}
								mu.Unlock()
							}
						})
					}
					both.Wait()
				}
			})
		}
		for i := from; i < to; i++ {
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		client.CloseIdleConnections()
	}
	type usage struct{ goroutines, files int }
	settled := func() []usage {
		u := make([]usage, len(replicas))
		for i, a := range replicas {
			u[i] = usage{int(metric(t, a, "go_goroutines")), openFiles(t, a.cmd.Process.Pid)}
		}
		return u
	}
	rc := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 1})
	defer rc.Close()
	redisClients := func() int { // the replicas' connections, and rc's
		list, err := rc.ClientList(context.Background()).Result()
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(list, "\n")
	}
	const occurrences = 5000
	round(0, occurrences/2)
	time.Sleep(time.Second) // the last processes' ends
	first, firstClients := settled(), redisClients()
	round(occurrences/2, occurrences)
	runnertest.Eventually(t, "the replicas back to their goroutines and files", func() bool {
		grown := redisClients() - firstClients // new pool connections
		files := 0
		for i, u := range settled() {
			if u.goroutines > first[i].goroutines+2 {
				return false
			}
			files += u.files - first[i].files
		}
		return files <= grown+2*len(replicas)
	})
	b, _ := os.ReadFile(filepath.Join(dir, "runs"))
	seen := map[string]int{}
	for _, fp := range strings.Fields(string(b)) {
		seen[fp]++
	}
	twice := 0
	for _, n := range seen {
		if n > 1 {
			twice++
		}
	}
	if len(seen) != occurrences || twice > 0 {
		t.Errorf("%d occurrences ran, %d of them more than once; want %d, each once", len(seen), twice, occurrences)
	}
	t.Logf("after round 1: %+v; after round 2: %+v", first, settled())
}

// TestRedisRoundTrips: a notification costs Redis one script call to admit
// its claims and one to settle them, whatever the number of its actions;
// the lease of its last process to end is given back with the settle, and
// each other one on its own when its process ends.
func TestRedisRoundTrips(t *testing.T) {
	addr := statetest.StartRedis(t)
	dir := t.TempDir()
	cfg := redisConfig(t, dir, addr, "", `
commands:
  - cmd: "true"
  - cmd: "true"
    args: [second]
`)
	a := startAmx(t, "-f", cfg)
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	ctx := context.Background()
	if err := c.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	// MONITOR shows each command a client sends, and those of scripts
	// marked "lua".
	mon, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	lines := bufio.NewReader(mon)
	if _, err := mon.Write([]byte("MONITOR\r\n")); err != nil {
		t.Fatal(err)
	}
	if l, err := lines.ReadString('\n'); err != nil || l != "+OK\r\n" {
		t.Fatalf("MONITOR: %q %v", l, err)
	}
	const n = 20
	for i := range n {
		post(t, nil, "http://"+a.addr+"/", alertJSON("firing", "f1", fmt.Sprintf("2026-12-05T08:%02d:00Z", i), `{"alertname":"A"}`))
	}
	if err := c.Echo(ctx, "end of the notifications").Err(); err != nil {
		t.Fatal(err)
	}
	sent := map[string]int{} // command -> calls sent by amx
	for {
		l, err := lines.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(l, `"end of the notifications"`) {
			break
		}
		if f := strings.Fields(l); len(f) > 3 && !strings.Contains(l, " lua]") {
			sent[strings.ToUpper(strings.Trim(f[3], `"`))]++
		}
	}
	stats, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	calls := func(cmd string) int { // that succeeded, scripts' own included
		m := regexp.MustCompile(`cmdstat_` + cmd + `:calls=(\d+),.*failed_calls=(\d+)`).FindStringSubmatch(stats)
		if m == nil {
			return 0
		}
		v, _ := strconv.Atoi(m[1])
		failed, _ := strconv.Atoi(m[2])
		return v - failed
	}
	// A script's first call loads it (EVALSHA fails, EVAL follows); a
	// lease renewal may fall in the middle.
	if got := calls("evalsha") + calls("eval"); got < 2*n || got > 2*n+1 {
		t.Errorf("%d script calls for %d notifications of two actions, want 2 each:\n%s", got, n, stats)
	}
	if got := calls("zrem"); got != 2*n {
		t.Errorf("%d lease releases, want %d", got, 2*n)
	}
	if sent["ZREM"] != n {
		t.Errorf("amx sent %d ZREM for %d notifications, want one each (the other lease with the settle): %v", sent["ZREM"], n, sent)
	}
}
