package rules

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden .err files")

// TestLoadErrors loads every testdata file that has a golden .err file and
// compares the whole error text: every problem, with file:line:col and field.
func TestLoadErrors(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		golden := strings.TrimSuffix(file, ".yml") + ".err"
		if _, err := os.Stat(golden); err != nil && !*update {
			continue // a valid file, tested below
		}
		t.Run(filepath.Base(file), func(t *testing.T) {
			_, err := Load(Source{File: file})
			if err == nil {
				t.Fatal("Load succeeded, want errors")
			}
			got := err.Error() + "\n"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("errors differ\ngot:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestLoadOldExample(t *testing.T) {
	cfg, err := Load(Source{File: "../examples/executor.yml"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ListenAddress != ":23222" || cfg.Verbose {
		t.Errorf("listen %q verbose %v", cfg.ListenAddress, cfg.Verbose)
	}
	cmds := cfg.Set.Commands
	if len(cmds) != 3 {
		t.Fatalf("got %d commands, want 3", len(cmds))
	}
	echo, tru, sleep := cmds[0], cmds[1], cmds[2]
	if echo.Cmd != "echo" || strings.Join(echo.Args, ",") != "banana,tomato" ||
		echo.MatchLabels["env"] != "testing" || echo.MatchLabels["owner"] != "me" || echo.NotifyOnFailure {
		t.Errorf("echo: %+v", echo)
	}
	if tru.Max != 3 || !tru.IgnoreResolved || !tru.NotifyOnFailure || tru.ResolvedSignal != syscall.SIGKILL {
		t.Errorf("true: %+v", tru)
	}
	if sleep.ResolvedSignal != syscall.SIGUSR1 || sleep.Name != "commands[2]" {
		t.Errorf("sleep: %+v", sleep)
	}
}

func TestLoadCompat(t *testing.T) {
	cfg, err := Load(Source{File: "testdata/compat.yml"})
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Set.Commands[0]
	if got := strings.Join(c.Args, ","); got != "10,2.5,true" {
		t.Errorf("args = %q", got)
	}
	if c.MatchLabels["code"] != "500" || c.NotifyOnFailure || !c.IgnoreResolved || c.Max != 0 {
		t.Errorf("command: %+v", c)
	}
	if !cfg.Verbose || cfg.ListenAddress != "127.0.0.1:9095" {
		t.Errorf("config: %+v", cfg)
	}
}

func TestLoadSignals(t *testing.T) {
	cfg, err := Load(Source{File: "testdata/signals.yml"})
	if err != nil {
		t.Fatal(err)
	}
	want := []syscall.Signal{syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGKILL}
	for i, c := range cfg.Set.Commands {
		if c.ResolvedSignal != want[i] {
			t.Errorf("%s: signal %v, want %v", c.Name, c.ResolvedSignal, want[i])
		}
	}
}

func TestParseSignal(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want syscall.Signal
		err  string
	}{
		{in: "SIGUSR1", want: syscall.SIGUSR1},
		{in: "usr2", want: syscall.SIGUSR2},
		{in: "Term", want: syscall.SIGTERM},
		{in: "9", want: syscall.SIGKILL},
		{in: "0", err: "unknown signal number 0"},
		{in: "-1", err: "unknown signal number -1"},
		{in: "SIGNOPE", err: `unknown signal "SIGNOPE"`},
	} {
		got, err := ParseSignal(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("ParseSignal(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestLoadCommandLine(t *testing.T) {
	t.Run("script only", func(t *testing.T) {
		cfg, err := Load(Source{Script: []string{"examples/reboot", "-f", "now"}})
		if err != nil {
			t.Fatal(err)
		}
		c := cfg.Set.Commands[0]
		if cfg.ListenAddress != ":8080" || c.Cmd != "examples/reboot" || strings.Join(c.Args, " ") != "-f now" ||
			len(c.MatchLabels) != 0 || !c.NotifyOnFailure || c.ResolvedSignal != syscall.SIGKILL {
			t.Errorf("config %+v command %+v", cfg, c)
		}
		if cfg.MaxBodyBytes != DefaultMaxBodyBytes || cfg.ShutdownGrace != 10*time.Second ||
			cfg.MaxAlerts != 100_000 || cfg.MaxConnections != 1024 || cfg.MaxProcesses != 256 || cfg.MaxInflightBytes != 256<<20 {
			t.Errorf("defaults: %+v", cfg)
		}
	})
	t.Run("limits", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "limits.yml")
		text := "max_alerts: 10\nmax_connections: 20\nmax_processes: 0\nmax_inflight_body_bytes: 2MiB\ncommands: [{cmd: x}]\n"
		if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(Source{File: f})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.MaxAlerts != 10 || cfg.MaxConnections != 20 || cfg.MaxProcesses != 0 || cfg.MaxInflightBytes != 2<<20 {
			t.Errorf("limits: %+v", cfg)
		}
	})
	t.Run("flags win over the file", func(t *testing.T) {
		cfg, err := Load(Source{File: "../examples/executor.yml", ListenAddress: "127.0.0.1:1", Verbose: true,
			Script: []string{"/bin/echo", "hi"}})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.ListenAddress != "127.0.0.1:1" || !cfg.Verbose || len(cfg.Set.Commands) != 4 {
			t.Errorf("config %+v, %d commands", cfg, len(cfg.Set.Commands))
		}
	})
	t.Run("script already in the file is not doubled", func(t *testing.T) {
		cfg, err := Load(Source{File: "testdata/signals.yml", Script: []string{"e"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg.Set.Commands) != 5 {
			t.Errorf("got %d commands, want 5", len(cfg.Set.Commands))
		}
	})
	t.Run("no command at all", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "empty.yml")
		if err := os.WriteFile(f, []byte("listen_address: :1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(Source{File: f})
		if err == nil || !strings.HasPrefix(err.Error(), f+": no command to run") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := Load(Source{File: "testdata/nope.yml"})
		if err == nil || !strings.Contains(err.Error(), "testdata/nope.yml") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestMatches(t *testing.T) {
	c := &Command{Process: Process{MatchLabels: map[string]string{"env": "testing", "owner": "me"}}}
	for _, tc := range []struct {
		labels map[string]string
		want   bool
	}{
		{map[string]string{"env": "testing", "owner": "me", "x": "y"}, true},
		{map[string]string{"env": "testing"}, false},
		{map[string]string{"env": "prod", "owner": "me"}, false},
		{map[string]string{"env": "testing", "owner": ""}, false},
		{nil, false},
	} {
		if got := c.Matches(tc.labels); got != tc.want {
			t.Errorf("Matches(%v) = %v", tc.labels, got)
		}
	}
	if !(&Command{}).Matches(nil) {
		t.Error("a command without match_labels must match everything")
	}
}

func TestLoadRoutes(t *testing.T) {
	cfg, err := Load(Source{File: "testdata/routes.yml"})
	if err != nil {
		t.Fatal(err)
	}
	set := cfg.Set
	if !set.RoutesFirst || set.LuaTimeout != 250*time.Millisecond || set.LuaMemoryLimit != 64<<20 ||
		len(set.Routes) != 2 || len(set.Commands) != 1 {
		t.Fatalf("set: %+v", set)
	}
	disk, inline := set.Routes[0], set.Routes[1]
	if disk.Name != "disk-cleanup" || disk.ScriptName != filepath.Join("testdata", "lua", "disk.lua") ||
		disk.Source != "exec(\"/usr/local/bin/cleanup\", alert.labels.instance)\n" ||
		disk.Max != 1 || disk.ResolvedSignal != syscall.SIGTERM || disk.Timeout != 10*time.Minute ||
		!disk.NotifyOnFailure || !disk.Matches(map[string]string{"alertname": "DiskFull", "x": "y"}) {
		t.Errorf("disk route: %+v", disk)
	}
	if inline.ScriptName != "testdata/routes.yml" || inline.ResolvedSignal != syscall.SIGKILL || !inline.Matches(nil) {
		t.Errorf("inline route: %+v", inline)
	}
	// The inline script's lines are the config file's: its comment says
	// which line it is on.
	lines := strings.Split(inline.Source, "\n")
	if len(lines) < 10 || lines[9] != "-- line 10 of this file" {
		t.Errorf("inline source is not aligned to the file: %q", inline.Source)
	}

	commandsFirst, err := Load(Source{File: "../examples/executor.yml"})
	if err != nil {
		t.Fatal(err)
	}
	if commandsFirst.Set.RoutesFirst || commandsFirst.Set.LuaTimeout != DefaultLuaTimeout {
		t.Errorf("defaults: %+v", commandsFirst.Set)
	}
}

// TestLoadRefusesHugeFiles: a path that points at something huge fails the
// load, naming the field, instead of reading it all into memory.
func TestLoadRefusesHugeFiles(t *testing.T) {
	dir := t.TempDir()
	huge := filepath.Join(dir, "huge.lua")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: no disk is used.
	if err := f.Truncate(maxFileBytes + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cfg := filepath.Join(dir, "amx.yml")
	if err := os.WriteFile(cfg, []byte("routes:\n  - name: a\n    script: huge.lua\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(Source{File: cfg})
	want := cfg + ":3:13: routes[0].script: " + huge + ": larger than 16777216 bytes"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}

// TestWaitDefault: a top-level wait is the default of every command and
// route that does not set its own, wherever it stands in the file.
func TestWaitDefault(t *testing.T) {
	f := filepath.Join(t.TempDir(), "amx.yml")
	config := `commands:
  - cmd: a
  - cmd: b
    wait: true
routes:
  - name: r
    lua: exec("x")
  - name: s
    wait: yes
    lua: exec("x")
wait: false
`
	if err := os.WriteFile(f, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(Source{File: f})
	if err != nil {
		t.Fatal(err)
	}
	c, r := cfg.Set.Commands, cfg.Set.Routes
	if !c[0].NoWait || c[1].NoWait || !r[0].NoWait || r[1].NoWait {
		t.Errorf("NoWait: commands %v %v, routes %v %v; want true false true false", c[0].NoWait, c[1].NoWait, r[0].NoWait, r[1].NoWait)
	}
	if err := os.WriteFile(f, []byte("commands:\n  - cmd: a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if cfg, err := Load(Source{File: f}); err != nil || cfg.Set.Commands[0].NoWait {
		t.Errorf("without wait, commands are waited for, as before: %v", err)
	}
}

// TestWaitDuration: wait takes a duration as well as true or false, on a
// command, a route and as the default.
func TestWaitDuration(t *testing.T) {
	f := filepath.Join(t.TempDir(), "amx.yml")
	config := "wait: 8s\ncommands:\n  - cmd: a\n  - cmd: b\n    wait: 2m\n  - cmd: c\n    wait: false\n  - cmd: d\n    wait: soon\n  - cmd: e\n    wait: 0s\n"
	if err := os.WriteFile(f, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(Source{File: f})
	want := f + ":9:11: commands[3].wait: want true, false or a duration like 8s, got \"soon\"\n" +
		f + ":11:11: commands[4].wait: want true, false or a duration like 8s, got \"0s\""
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	c := cfg.Set.Commands
	if c[0].WaitAtMost != 8*time.Second || c[0].NoWait || c[1].WaitAtMost != 2*time.Minute || !c[2].NoWait || c[2].WaitAtMost != 0 {
		t.Errorf("waits: %+v %+v %+v", c[0].Process, c[1].Process, c[2].Process)
	}
}

// TestStateAndLimits: the state section, and by, cooldown and rate on
// commands and routes, with their defaults and errors.
func TestStateAndLimits(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "amx.yml")
	config := `state:
  path: data/state.db
  retention: 48h
commands:
  - cmd: a
    by: [instance, job]
    cooldown: 30m
    rate: 5/10m
routes:
  - name: r
    lua: exec("x")
    rate: " 2 / 1h "
`
	if err := os.WriteFile(f, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(Source{File: f})
	if err != nil {
		t.Fatal(err)
	}
	c, r := cfg.Set.Commands[0], cfg.Set.Routes[0]
	if cfg.State.Path != filepath.Join(dir, "data/state.db") || cfg.State.Retention != 48*time.Hour || cfg.State.LockTimeout != DefaultLockTimeout {
		t.Errorf("state: %+v", cfg.State)
	}
	if !slices.Equal(c.By, []string{"instance", "job"}) || c.Cooldown != 30*time.Minute || c.Rate != (Rate{5, 10 * time.Minute}) {
		t.Errorf("command limits: by %v cooldown %v rate %v", c.By, c.Cooldown, c.Rate)
	}
	if r.Rate != (Rate{2, time.Hour}) {
		t.Errorf("route rate: %v", r.Rate)
	}
	if cfg.DedupeWindow != 2*time.Minute {
		t.Errorf("dedupe_window default %v, want 2m", cfg.DedupeWindow)
	}

	bad := "state:\n  pathh: x\n  retention: 0s\ncommands:\n  - cmd: a\n    rate: 5/0m\n    by: instance\n    cooldown: soon\n"
	if err := os.WriteFile(f, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(Source{File: f})
	want := []string{
		f + `:2:3: state.pathh: unknown field (did you mean "path"?)`,
		f + `:3:14: state.retention: must be positive`,
		f + `:6:11: commands[0].rate: want starts per window like 5/10m, got "5/0m"`,
		f + `:7:9: commands[0].by: want a list of strings, got "instance"`,
		f + `:8:15: commands[0].cooldown: want a duration like 30s or 10m, got "soon"`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("err = %v\nwant %s", err, strings.Join(want, "\n"))
	}
}

// TestStateRedis: state.redis, its secrets from files, and its mistakes.
func TestStateRedis(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "amx.yml")
	if err := os.WriteFile(filepath.Join(dir, "pw"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := "state:\n  redis:\n    address: redis:6379\n    password_file: pw\n    db: 2\n    lease_ttl: 10s\ncommands:\n  - cmd: a\n"
	if err := os.WriteFile(f, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(Source{File: f})
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.State.Redis; r == nil || r.Address != "redis:6379" || r.Password != "s3cret" || r.DB != 2 || r.LeaseTTL != 10*time.Second ||
		r.Timeout != DefaultRedisTimeout || r.KeyPrefix != "amx" || r.TLS != nil {
		t.Errorf("redis: %+v", cfg.State.Redis)
	}
	bad := "state:\n  path: x.db\n  redis:\n    db: 20\n    tls:\n      cert_file: c.pem\ncommands:\n  - cmd: a\n"
	if err := os.WriteFile(f, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(Source{File: f})
	for _, want := range []string{
		f + ":4:9: state.redis.db: want a database number from 0 to 15",
		f + ":6:7: state.redis.tls.cert_file: give both cert_file and key_file, or neither",
		f + ":4:5: state.redis.address: required: host:port of the Redis server",
		f + ":2:3: state.redis: give path (one amx) or redis (replicas), not both",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

func TestSeparateStderr(t *testing.T) {
	cfg := loadText(t, `commands:
  - cmd: a
  - cmd: b
    separate_stderr: true
routes:
  - name: r
    separate_stderr: true
    lua: exec("x")
`)
	c, r := cfg.Set.Commands, cfg.Set.Routes
	if c[0].SeparateStderr || !c[1].SeparateStderr || !r[0].SeparateStderr {
		t.Errorf("SeparateStderr: commands %v %v, route %v; want false true true", c[0].SeparateStderr, c[1].SeparateStderr, r[0].SeparateStderr)
	}
}

// loadText loads a configuration written to a file of its own.
func loadText(t *testing.T, text string) *Config {
	t.Helper()
	f := filepath.Join(t.TempDir(), "amx.yml")
	if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(Source{File: f})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
