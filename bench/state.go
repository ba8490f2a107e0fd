package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// wrkNewOccurrence makes wrk POST the recorded payload with its alerts'
// startsAt changed on every request, so that each is a new occurrence:
// copies of one would be deduplicated, measuring the duplicate check
// instead of the work. Each run of wrk has its own year (the argument
// after --), each of its threads its own month.
const wrkNewOccurrence = `wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(%q, "rb"))
local body = f:read("*a")
f:close()
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
function init(args)
  run = tonumber(args[1]) or 0
end
local n = 0
function request()
  n = n + 1
  local at = string.format('"startsAt": "%%04d-%%02d-01T00:00:00.%%09dZ"', 2000 + run, id or 1, n)
  return wrk.format(nil, nil, nil, (body:gsub('"startsAt": *"[^"]*"', at)))
end
`

// State contestants: the same route or command over the state in memory
// and in a bbolt file.
const (
	incrMemory  = "incr-memory"
	incrBolt    = "incr-bolt"
	spawnMemory = "spawn-memory"
	spawnBolt   = "spawn-bolt"
	onceMemory  = "once-memory"
	onceBolt    = "once-bolt"
	incrRedis   = "incr-redis"
	spawnRedis  = "spawn-redis"
	// The route that uses the sum: a read of the store per alert.
	sumMemory = "sum-memory"
	sumRedis  = "sum-redis"
)

// stateConfigs are the contestants' configurations; dir holds the state
// files, redisAddr is the Redis server ("" leaves the Redis contestants
// out).
func stateConfigs(dir, redisAddr string) map[string]string {
	// A statement state.incr records the increment without reading the
	// sum (luaapi/rewrite.go); sum reads it.
	incr := "routes:\n  - name: count\n    lua: |\n      state.incr(\"seen:\" .. alert.labels.instance)\n"
	sum := "routes:\n  - name: count\n    lua: |\n      if state.incr(\"seen:\" .. alert.labels.instance) > 1e12 then exec(\"/bin/true\") end\n"
	spawn := "commands:\n  - cmd: /bin/true\n"
	// once: the claim must be on disk before the process starts.
	once := "commands:\n  - cmd: /bin/true\n    once: true\n"
	bolt := func(name string) string {
		return fmt.Sprintf("state:\n  path: %s\n", filepath.Join(dir, name+".db"))
	}
	configs := map[string]string{
		incrMemory:  incr,
		incrBolt:    bolt(incrBolt) + incr,
		spawnMemory: spawn,
		spawnBolt:   bolt(spawnBolt) + spawn,
		onceMemory:  once,
		onceBolt:    bolt(onceBolt) + once,
		sumMemory:   sum,
	}
	if redisAddr != "" {
		r := fmt.Sprintf("state:\n  redis:\n    address: %s\n    key_prefix: %%s\n", redisAddr)
		configs[incrRedis] = fmt.Sprintf(r, incrRedis) + incr
		configs[spawnRedis] = fmt.Sprintf(r, spawnRedis) + spawn
		configs[sumRedis] = fmt.Sprintf(r, sumRedis) + sum
	}
	return configs
}

// stateBench measures notifications/s and the server's CPU per
// notification with the state in memory and in a file, side by side: the
// contestants take turns within each round, each request a new occurrence.
func (b *bench) stateBench() error {
	if err := writeFile(filepath.Join(b.dir, "new.lua"), fmt.Sprintf(wrkNewOccurrence, b.payload)); err != nil {
		return err
	}
	names := []string{incrMemory, incrBolt, spawnMemory, spawnBolt, onceMemory, onceBolt}
	redisAddr, stopRedis, err := startRedis(b.dir, b.loadCPUs)
	if err != nil {
		return err
	}
	defer stopRedis()
	if redisAddr != "" {
		names = append(names, incrRedis, spawnRedis, sumMemory, sumRedis)
	}
	for name, c := range stateConfigs(b.dir, redisAddr) {
		if err := writeFile(filepath.Join(b.dir, name+".yml"), c); err != nil {
			return err
		}
	}
	b.stateRate, b.stateTurn, b.stateCPU = map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
	for round := 1; round <= b.runs; round++ {
		servers := map[string]*server{}
		for _, name := range names {
			os.Remove(filepath.Join(b.dir, name+".db")) // each round from an empty state
			s, err := b.start(b.amx, "-f", filepath.Join(b.dir, name+".yml"))
			if err != nil {
				return err
			}
			defer s.stop()
			servers[name] = s
			if _, err := b.wrkScript(s.url, time.Second, "new.lua"); err != nil { // warm up
				return err
			}
		}
		sum, cpu := map[string]float64{}, map[string]float64{}
		for turn := range turns {
			for i := range names {
				name := names[(i+turn)%len(names)]
				s, d := servers[name], b.duration/turns
				rate, used, _, err := s.perRequest(d, func() (float64, error) { return b.wrkScript(s.url, d, "new.lua") })
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				sum[name] += rate
				cpu[name] += used
				b.stateTurn[name] = append(b.stateTurn[name], rate)
			}
		}
		for _, name := range names {
			b.stateRate[name] = append(b.stateRate[name], sum[name]/turns)
			b.stateCPU[name] = append(b.stateCPU[name], cpu[name]/turns)
			progress("state round %d/%d %-13s %8.0f/s %6.0f µs CPU each", round, b.runs, name, sum[name]/turns, cpu[name]/turns)
		}
		for _, s := range servers {
			s.stop()
		}
	}
	return nil
}

// startRedis runs a redis-server without persistence on a free port, on
// the load generator's cores (so that it does not take the server's), or
// says it is not installed ("" and no error): the Redis contestants are
// then left out.
func startRedis(dir, cpus string) (addr string, stop func(), err error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		progress("redis-server not installed: the Redis contestants are left out")
		return "", func() {}, nil
	}
	addr, err = freePort()
	if err != nil {
		return "", nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	cmd := pinned(cpus, bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop = func() { cmd.Process.Kill(); cmd.Wait() }
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("redis-server did not listen on %s", addr)
		}
	}
}

// perRequest runs load, wrk asked for d, against s and returns its rate
// and s's own and its children's CPU per request, in µs.
func (s *server) perRequest(d time.Duration, load func() (float64, error)) (rate, own, children float64, err error) {
	own0, children0 := s.cpu()
	if rate, err = load(); err != nil {
		return 0, 0, 0, err
	}
	own1, children1 := s.cpu()
	n := rate * wrkDuration(d).Seconds()
	return rate, (own1 - own0).Seconds() / n * 1e6, (children1 - children0).Seconds() / n * 1e6, nil
}

// cpu is the CPU time the server has used so far, user and system, from
// /proc/<pid>/stat: its own, and its children's that it has waited for.
func (s *server) cpu() (own, children time.Duration) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		fatal(err)
	}
	return parseCPU(string(stat))
}

// parseCPU reads utime and stime, then cutime and cstime (fields 14 to 17,
// in clock ticks of 1/100 s) from a /proc/<pid>/stat line; the command
// name, field 2, may hold spaces, so fields count from its closing
// parenthesis.
func parseCPU(stat string) (own, children time.Duration) {
	rest := stat[strings.LastIndexByte(stat, ')')+2:]
	f := strings.Fields(rest)
	if len(f) < 15 {
		return 0, 0
	}
	var t [4]int64
	for i := range t {
		t[i], _ = strconv.ParseInt(f[11+i], 10, 64)
	}
	return time.Duration(t[0]+t[1]) * 10 * time.Millisecond, time.Duration(t[2]+t[3]) * 10 * time.Millisecond
}

func (b *bench) stateMarkdown() string {
	var w strings.Builder
	rate := func(xs []float64) string { return summarize(xs).rates() }
	us := func(xs []float64) string { return summarize(xs).micros() }
	ratio := func(x, limit string) string { return ratios(b.stateTurn[x], b.stateTurn[limit]).ratio() }
	w.WriteString("\n| state: each request a new occurrence | per second | server CPU per notification, µs | ratio file/memory | target |\n|---|---|---|---|---|\n")
	fmt.Fprintf(&w, "| (g) route calling `state.incr`, nothing exec'd, state in memory | %s | %s | 1 | |\n", rate(b.stateRate[incrMemory]), us(b.stateCPU[incrMemory]))
	fmt.Fprintf(&w, "| (h) the same, `state.path` (bbolt; script writes committed within 100 ms) | %s | %s | h/g %s | ≥ 0.9 |\n", rate(b.stateRate[incrBolt]), us(b.stateCPU[incrBolt]), ratio(incrBolt, incrMemory))
	fmt.Fprintf(&w, "| (i) classic command spawning `/bin/true`, state in memory | %s | %s | 1 | |\n", rate(b.stateRate[spawnMemory]), us(b.stateCPU[spawnMemory]))
	fmt.Fprintf(&w, "| (j) the same, `state.path` (its claim committed with the outcome) | %s | %s | j/i %s | ≥ 0.9 |\n", rate(b.stateRate[spawnBolt]), us(b.stateCPU[spawnBolt]), ratio(spawnBolt, spawnMemory))
	fmt.Fprintf(&w, "| (k) the same command with `once: true`, state in memory | %s | %s | 1 | |\n", rate(b.stateRate[onceMemory]), us(b.stateCPU[onceMemory]))
	fmt.Fprintf(&w, "| (l) the same, `state.path`: its claim is on disk (fsync) before each start | %s | %s | l/k %s | |\n", rate(b.stateRate[onceBolt]), us(b.stateCPU[onceBolt]), ratio(onceBolt, onceMemory))
	if len(b.stateRate[incrRedis]) > 0 {
		fmt.Fprintf(&w, "| (m) route calling `state.incr` (g), state in Redis (local, no persistence): 1 round trip | %s | %s | m/g %s | ≥ 0.7 |\n", rate(b.stateRate[incrRedis]), us(b.stateCPU[incrRedis]), ratio(incrRedis, incrMemory))
		fmt.Fprintf(&w, "| (n) classic command spawning `/bin/true`, state in Redis: 2 round trips | %s | %s | n/i %s | ≥ 0.9 |\n", rate(b.stateRate[spawnRedis]), us(b.stateCPU[spawnRedis]), ratio(spawnRedis, spawnMemory))
		fmt.Fprintf(&w, "| (o) route using the sum, `if state.incr(k) > 1e12 then ... end`, state in memory | %s | %s | 1 | |\n", rate(b.stateRate[sumMemory]), us(b.stateCPU[sumMemory]))
		fmt.Fprintf(&w, "| (p) the same, state in Redis: 1 round trip per alert's read, 1 to admit | %s | %s | p/o %s | |\n", rate(b.stateRate[sumRedis]), us(b.stateCPU[sumRedis]), ratio(sumRedis, sumMemory))
	}
	return w.String()
}
