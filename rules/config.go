// Package rules owns amx's configuration: it reads executor.yml files into a
// validated, immutable Set of commands that the engine decides against.
package rules

import (
	"crypto/tls"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"
)

// Defaults for settings a configuration leaves out.
const (
	DefaultListenAddress = ":8080"
	DefaultMaxBodyBytes  = 32 << 20
	DefaultShutdownGrace = 10 * time.Second
	// DefaultDedupeWindow covers the copies Alertmanager replicas send of
	// one notification, seconds to a minute apart, and no more: a repeat
	// at repeat_interval runs again, as with the old executor.
	DefaultDedupeWindow = 2 * time.Minute
	DefaultRetention    = 24 * time.Hour
	DefaultLockTimeout  = 5 * time.Second
	DefaultSignal       = syscall.SIGKILL
	DefaultLuaTimeout   = 100 * time.Millisecond
	// The bounds on what clients can make amx hold: well above what
	// Alertmanager sends (its largest real groups are thousands of
	// alerts), well below what exhausts a host.
	DefaultMaxAlerts        = 100_000
	DefaultMaxInflightBytes = 256 << 20
	DefaultMaxConnections   = 1024
	DefaultMaxProcesses     = 256
)

// Config is a loaded configuration: the server's settings and the rules.
type Config struct {
	// File is the configuration file, empty when only the command line was given.
	File          string
	ListenAddress string
	Verbose       bool
	TLSCert       string
	TLSKey        string
	// MaxBodyBytes caps the size of one webhook request body.
	MaxBodyBytes int64
	// MaxInflightBytes caps the request bodies held at once, all requests
	// together; never less than MaxBodyBytes.
	MaxInflightBytes int64
	// MaxAlerts caps the alerts of one notification.
	MaxAlerts int
	// MaxConnections caps the open client connections.
	MaxConnections int
	// MaxProcesses caps the processes amx runs at once; zero is no limit.
	MaxProcesses int
	// ShutdownGrace is how long running commands may go on after SIGTERM
	// before their process groups are killed.
	ShutdownGrace time.Duration
	// DedupeWindow is how long after a delivered success a copy of the
	// notification is a duplicate; zero runs every copy.
	DedupeWindow time.Duration
	// State is where the delivery state is kept.
	State State
	// Certificate is the TLS certificate and key read from TLSCert and
	// TLSKey; nil without TLS.
	Certificate *tls.Certificate
	// Auth is who may send notifications; nil lets every client in.
	Auth *Auth
	Set  *Set
	// Files are the files the configuration was read from, in order: the
	// config file, the Lua scripts, the TLS certificate and key. Sum is the
	// checksum of the bytes read; a watcher compares it with Checksum(Files).
	Files []string
	Sum   Sum
}

// Dir is the directory relative paths in the configuration resolve against.
func (c *Config) Dir() string {
	if c.File == "" {
		return "."
	}
	return filepath.Dir(c.File)
}

// Set is the immutable set of rules that notifications are decided against.
// It is never modified after Load returns, so it is safe to share.
type Set struct {
	Commands []*Command
	Routes   []*Route
	// RoutesFirst is set when routes come before commands in the file:
	// the Plan follows the file's order.
	RoutesFirst bool
	// LuaTimeout is the deadline of one script invocation.
	LuaTimeout time.Duration
	// LuaMemoryLimit is the Go heap size at which running scripts are
	// stopped; zero means luaapi's default.
	LuaMemoryLimit uint64
}

// State configures the delivery state: without Path it is kept in memory.
type State struct {
	// Path is the bbolt file; empty keeps the state in memory.
	Path string
	// Retention is how long outcomes not delivered, tombstones and once
	// marks are kept.
	Retention time.Duration
	// LockTimeout is how long start waits for a file another process
	// holds.
	LockTimeout time.Duration
	// Redis, when set, keeps the state in Redis, shared by replicas.
	Redis *Redis
}

// Rate is at most N starts Per window; zero N is no limit.
type Rate struct {
	N   int
	Per time.Duration
}

// Process is what classic commands and Lua routes share: which alerts they
// take and how the processes they start are run.
type Process struct {
	MatchLabels map[string]string
	// Max caps the live processes of one command for one fingerprint;
	// zero means no limit.
	Max             int
	NotifyOnFailure bool
	IgnoreResolved  bool
	ResolvedSignal  syscall.Signal
	// Timeout ends the process group after this long; zero means never.
	Timeout time.Duration
	// StdinPayload (stdin: payload) gives the process the notification's
	// JSON on its standard input.
	StdinPayload bool
	// KillAfter escalates a resolved signal the process survives to
	// SIGKILL after this long; zero never does.
	KillAfter time.Duration
	// Once runs the process at most once per alert occurrence (the
	// fingerprint and startsAt it is bound to) while amx runs.
	Once bool
	// NoWait (wait: false) answers the notification once the process has
	// started instead of when it ends. WaitAtMost (wait: 8s) waits for it
	// that long at most: a process still running then is answered as
	// started. Zero waits until it ends.
	NoWait     bool
	WaitAtMost time.Duration
	// SeparateStderr logs standard error apart from standard output
	// (stream=stderr), at the cost of a second pipe per process.
	SeparateStderr bool
	waitSet        bool // wait given here, not taken from the configuration's default
	// By are the labels whose values are an action's key, for max and
	// cooldown; without, the key is the alert's fingerprint.
	By []string
	// Cooldown: after an action starts for a key, it does not start again
	// for that key until this has passed.
	Cooldown time.Duration
	// Rate caps the starts of an action, whatever the key.
	Rate Rate
}

// DefaultKillAfter is how long a process may outlive its resolved signal.
const DefaultKillAfter = 30 * time.Second

// DefaultProcess is the settings of a command or route that sets none.
func DefaultProcess() Process {
	return Process{NotifyOnFailure: true, ResolvedSignal: DefaultSignal, KillAfter: DefaultKillAfter}
}

// Matches reports whether every match label is present with the same value.
// Without match labels everything matches.
func (p *Process) Matches(labels map[string]string) bool {
	for k, v := range p.MatchLabels {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// Route is a Lua dispatch rule: a script run for every alert that passes
// MatchLabels, with defaults for the commands it execs.
type Route struct {
	Name string
	// ScriptName names the script in errors: the script file, or the config
	// file for an inline script.
	ScriptName string
	// Source is the script text. An inline script is preceded by blank lines
	// so that its line numbers are the config file's.
	Source string
	// Dir is the config file's directory: relative command paths a script
	// execs ("bin/cleanup") resolve against it.
	Dir string
	// RetryOnScriptError makes a script's error fail the notification
	// (with NotifyOnFailure), so that Alertmanager retries. By default it
	// does not: the same rule fails the same way on every retry.
	RetryOnScriptError bool
	Process
}

// Command resolves a command a script execs: a relative path
// ("bin/cleanup") is relative to the config file's directory, and a bare
// name is looked up in PATH when it runs.
func (r *Route) Command(cmd string) string {
	if strings.ContainsRune(cmd, '/') && !filepath.IsAbs(cmd) {
		return filepath.Join(r.Dir, cmd)
	}
	return cmd
}

// Command is one classic command, as the old executor's commands[] entries.
type Command struct {
	// Name identifies the command in logs and metrics: "commands[2]", or
	// "command line" for the script given as arguments.
	Name string
	Cmd  string
	Args []string
	Process
}

// String renders the command line for logs.
func (c *Command) String() string {
	return strings.Join(append([]string{c.Cmd}, c.Args...), " ")
}

// same reports whether two commands are the same rule, which is how the old
// executor merged a command given on the command line with the file's.
func (c *Command) same(o *Command) bool {
	return c.Cmd == o.Cmd && slices.Equal(c.Args, o.Args) && mapsEqual(c.MatchLabels, o.MatchLabels)
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Source says where a configuration comes from. Command-line settings win
// over the file's, as with the old executor.
type Source struct {
	// File is the YAML configuration file (-f); optional.
	File string
	// ListenAddress (-l) overrides the file's listen_address when set.
	ListenAddress string
	// Verbose (-v) turns on debug logging; the file can also turn it on.
	Verbose bool
	// Script is a command and its arguments given on the command line; it
	// becomes a command that matches every alert.
	Script []string
}

// Load reads, merges and validates a configuration. Every problem in the file
// is reported at once, each as file:line:col: field: message.
//
// When the configuration is invalid, Load returns an incomplete Config with
// the error, as go/parser returns a partial file: only its Files and Sum are
// meaningful, so that a watcher can wait for the files to be fixed.
func Load(src Source) (*Config, error) {
	read := newSources()
	cfg, err := load(src, read)
	cfg.Files, cfg.Sum = read.files, read.sum()
	return cfg, err
}

func load(src Source, read *sources) (*Config, error) {
	cfg := &Config{
		File:             src.File,
		ListenAddress:    DefaultListenAddress,
		MaxBodyBytes:     DefaultMaxBodyBytes,
		MaxInflightBytes: DefaultMaxInflightBytes,
		MaxAlerts:        DefaultMaxAlerts,
		MaxConnections:   DefaultMaxConnections,
		MaxProcesses:     DefaultMaxProcesses,
		ShutdownGrace:    DefaultShutdownGrace,
		DedupeWindow:     DefaultDedupeWindow,
		State:            State{Retention: DefaultRetention, LockTimeout: DefaultLockTimeout},
		Set:              &Set{LuaTimeout: DefaultLuaTimeout},
	}
	if src.File != "" {
		data, err := read.read(src.File)
		if err != nil {
			return cfg, fmt.Errorf("load config: %w", err)
		}
		if err := cfg.parse(src.File, data, read); err != nil {
			return cfg, err
		}
	}
	if src.ListenAddress != "" {
		cfg.ListenAddress = src.ListenAddress
	}
	cfg.Verbose = cfg.Verbose || src.Verbose
	if len(src.Script) > 0 {
		c := &Command{Name: "command line", Cmd: src.Script[0], Args: src.Script[1:], Process: DefaultProcess()}
		if !slices.ContainsFunc(cfg.Set.Commands, c.same) {
			cfg.Set.Commands = append(cfg.Set.Commands, c)
		}
	}
	if len(cfg.Set.Commands) == 0 && len(cfg.Set.Routes) == 0 {
		err := errors.New("no command to run: give a script on the command line, or commands or routes in a config file (-f)")
		if src.File != "" {
			err = fmt.Errorf("%s: %w", src.File, err)
		}
		return cfg, err
	}
	return cfg, nil
}

// parse decodes one file into cfg; read reads the files it references.
func (cfg *Config) parse(file string, data []byte, read *sources) error {
	return cfg.parseKeys(file, data, read, nil)
}

// parseKeys is parse, collecting the key paths the mappings accept in
// keys when it is set.
func (cfg *Config) parseKeys(file string, data []byte, read *sources, keys map[string]bool) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return syntaxError(file, err)
	}
	if len(doc.Content) == 0 {
		return nil // an empty file is an empty configuration
	}
	d := &decoder{file: file, read: read, keys: keys}
	var maxBody int64
	var tlsNode, certNode, keyNode, caNode *yaml.Node
	wait := waitSetting{} // the old executor answered when its commands ended
	d.mapping(doc.Content[0], "", map[string]field{
		"listen_address": func(n *yaml.Node, p string) { d.str(n, p, &cfg.ListenAddress) },
		"verbose":        func(n *yaml.Node, p string) { d.boolean(n, p, &cfg.Verbose) },
		"tls_key":        func(n *yaml.Node, p string) { d.str(n, p, &cfg.TLSKey); tlsNode, keyNode = n, n },
		"tls_crt":        func(n *yaml.Node, p string) { d.str(n, p, &cfg.TLSCert); tlsNode, certNode = n, n },
		"shutdown_grace": func(n *yaml.Node, p string) { d.duration(n, p, &cfg.ShutdownGrace) },
		"dedupe_window":  func(n *yaml.Node, p string) { d.duration(n, p, &cfg.DedupeWindow) },
		"state": func(n *yaml.Node, p string) {
			d.mapping(n, p, map[string]field{
				"path": func(n *yaml.Node, p string) {
					d.str(n, p, &cfg.State.Path)
					if cfg.State.Path != "" && !filepath.IsAbs(cfg.State.Path) {
						cfg.State.Path = filepath.Join(filepath.Dir(file), cfg.State.Path)
					}
				},
				"retention":    func(n *yaml.Node, p string) { d.positiveDuration(n, p, &cfg.State.Retention) },
				"lock_timeout": func(n *yaml.Node, p string) { d.positiveDuration(n, p, &cfg.State.LockTimeout) },
				"redis":        func(n *yaml.Node, p string) { cfg.State.Redis = d.redis(n, p, filepath.Dir(file)) },
			})
			if cfg.State.Path != "" && cfg.State.Redis != nil {
				d.errorf(resolve(n), join(p, "redis"), "give path (one amx) or redis (replicas), not both")
			}
		},
		"max_body_bytes": func(n *yaml.Node, p string) {
			d.integer(n, p, &maxBody)
			if maxBody < 0 || (maxBody == 0 && !isNull(n)) {
				d.errorf(n, p, "must be positive")
			}
			if maxBody > 0 {
				cfg.MaxBodyBytes = maxBody
			}
		},
		"max_inflight_body_bytes": func(n *yaml.Node, p string) {
			var v uint64
			d.bytes(n, p, &v)
			if v > 0 {
				cfg.MaxInflightBytes = int64(min(v, 1<<62))
			}
		},
		"max_alerts":      func(n *yaml.Node, p string) { d.positive(n, p, &cfg.MaxAlerts) },
		"max_connections": func(n *yaml.Node, p string) { d.positive(n, p, &cfg.MaxConnections) },
		"max_processes": func(n *yaml.Node, p string) {
			var v int64
			if d.integer(n, p, &v) && v < 0 {
				d.errorf(n, p, "must be zero (no limit) or positive")
			}
			cfg.MaxProcesses = int(clamp(v))
		},
		"commands": func(n *yaml.Node, p string) {
			d.sequence(n, p, func(n *yaml.Node, p string) {
				cfg.Set.Commands = append(cfg.Set.Commands, d.command(n, p))
			})
		},
		"routes": func(n *yaml.Node, p string) {
			cfg.Set.RoutesFirst = len(cfg.Set.Commands) == 0
			names := make(map[string]bool)
			d.sequence(n, p, func(n *yaml.Node, p string) {
				r := d.route(n, p, cfg.Dir())
				if r.Name != "" && names[r.Name] {
					d.errorf(n, join(p, "name"), "route %q is defined twice", r.Name)
				}
				names[r.Name] = true
				cfg.Set.Routes = append(cfg.Set.Routes, r)
			})
		},
		"auth": func(n *yaml.Node, p string) { cfg.Auth, caNode = d.auth(n, p, cfg.Dir()) },
		"wait": func(n *yaml.Node, p string) { wait = d.wait(n, p) },
		"lua": func(n *yaml.Node, p string) {
			d.mapping(n, p, map[string]field{
				"timeout": func(n *yaml.Node, p string) {
					d.duration(n, p, &cfg.Set.LuaTimeout)
					if cfg.Set.LuaTimeout == 0 {
						d.errorf(n, p, "must be positive")
					}
				},
				"memory_limit": func(n *yaml.Node, p string) { d.bytes(n, p, &cfg.Set.LuaMemoryLimit) },
			})
		},
	})
	switch {
	case (cfg.TLSCert == "") != (cfg.TLSKey == ""):
		d.errorf(tlsNode, "tls_crt", "tls_crt and tls_key must be given together")
	case cfg.TLSCert != "":
		cfg.Certificate = d.certificate(cfg.TLSCert, cfg.TLSKey, certNode, keyNode)
	}
	for _, c := range cfg.Set.Commands {
		if !c.waitSet {
			c.NoWait, c.WaitAtMost = wait.no, wait.atMost
		}
	}
	for _, r := range cfg.Set.Routes {
		if !r.waitSet {
			r.NoWait, r.WaitAtMost = wait.no, wait.atMost
		}
	}
	if cfg.Auth != nil && cfg.Auth.ClientCAs != nil && cfg.TLSCert == "" {
		d.errorf(caNode, "auth.client_ca_file", "client certificates need TLS: set tls_crt and tls_key")
	}
	return d.err()
}

// certificate reads a TLS key pair. The paths are used as given, relative to
// the working directory, as the old executor used them.
func (d *decoder) certificate(certFile, keyFile string, certNode, keyNode *yaml.Node) *tls.Certificate {
	certPEM, err := d.read.read(certFile)
	if err != nil {
		d.errorf(certNode, "tls_crt", "%v", err)
	}
	keyPEM, kerr := d.read.read(keyFile)
	if kerr != nil {
		d.errorf(keyNode, "tls_key", "%v", kerr)
	}
	if err != nil || kerr != nil {
		return nil
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		d.errorf(certNode, "tls_crt", "%v", err)
		return nil
	}
	return &cert
}

// command decodes one entry of commands[].
func (d *decoder) command(n *yaml.Node, path string) *Command {
	c := &Command{Name: path, Process: DefaultProcess()}
	seenCmd := false
	d.mapping(n, path, d.process(&c.Process, map[string]field{
		"cmd":  func(n *yaml.Node, p string) { d.str(n, p, &c.Cmd); seenCmd = true },
		"args": func(n *yaml.Node, p string) { d.strings(n, p, &c.Args) },
	}))
	if rn := resolve(n); c.Cmd == "" && (isNull(rn) || rn.Kind == yaml.MappingNode) {
		if seenCmd {
			d.errorf(rn, join(path, "cmd"), "must not be empty")
		} else {
			d.errorf(rn, join(path, "cmd"), "missing: every command needs cmd")
		}
	}
	return c
}

// process adds the keys of the settings commands and routes share to fields.
func (d *decoder) process(p *Process, fields map[string]field) map[string]field {
	fields["match_labels"] = func(n *yaml.Node, path string) { d.stringMap(n, path, &p.MatchLabels) }
	fields["notify_on_failure"] = func(n *yaml.Node, path string) { d.boolean(n, path, &p.NotifyOnFailure) }
	fields["ignore_resolved"] = func(n *yaml.Node, path string) { d.boolean(n, path, &p.IgnoreResolved) }
	fields["timeout"] = func(n *yaml.Node, path string) { d.duration(n, path, &p.Timeout) }
	fields["kill_after"] = func(n *yaml.Node, path string) { d.duration(n, path, &p.KillAfter) }
	fields["once"] = func(n *yaml.Node, path string) { d.boolean(n, path, &p.Once) }
	fields["separate_stderr"] = func(n *yaml.Node, path string) { d.boolean(n, path, &p.SeparateStderr) }
	fields["by"] = func(n *yaml.Node, path string) { d.strings(n, path, &p.By) }
	fields["cooldown"] = func(n *yaml.Node, path string) { d.duration(n, path, &p.Cooldown) }
	fields["rate"] = func(n *yaml.Node, path string) {
		n = resolve(n)
		r, err := ParseRate(n.Value)
		if n.Kind != yaml.ScalarNode || err != nil {
			d.errorf(n, path, "want starts per window like 5/10m, got %s", describe(n))
			return
		}
		p.Rate = r
	}
	fields["wait"] = func(n *yaml.Node, path string) {
		w := d.wait(n, path)
		p.NoWait, p.WaitAtMost, p.waitSet = w.no, w.atMost, true
	}
	fields["resolved_signal"] = func(n *yaml.Node, path string) { d.signal(n, path, &p.ResolvedSignal) }
	fields["stdin"] = func(n *yaml.Node, path string) {
		var v string
		d.str(n, path, &v)
		if p.StdinPayload = v == "payload"; !p.StdinPayload {
			d.errorf(n, path, `want "payload", got %q`, v)
		}
	}
	// The old executor read zero or a negative max as "no limit".
	fields["max"] = func(n *yaml.Node, path string) {
		var v int64
		d.integer(n, path, &v)
		p.Max = int(clamp(v))
	}
	return fields
}

// waitSetting is a value of wait: true (zero), false, or a duration.
type waitSetting struct {
	no     bool
	atMost time.Duration
}

// wait reads true, false, or a positive duration ("8s").
func (d *decoder) wait(n *yaml.Node, path string) waitSetting {
	n = resolve(n)
	var b bool
	if n.Kind == yaml.ScalarNode && n.Decode(&b) == nil { // as boolean reads it: yes and no too
		return waitSetting{no: !b}
	}
	if n.Kind == yaml.ScalarNode && !isNull(n) {
		if v, err := time.ParseDuration(n.Value); err == nil && v > 0 {
			return waitSetting{atMost: v}
		}
	}
	d.errorf(n, path, "want true, false or a duration like 8s, got %s", describe(n))
	return waitSetting{}
}

func clamp(n int64) int64 {
	return max(0, min(n, 1<<31-1))
}

// route decodes one entry of routes[]; dir is the config file's directory.
func (d *decoder) route(n *yaml.Node, path, dir string) *Route {
	r := &Route{Dir: dir, Process: DefaultProcess()}
	var scriptNode, inlineNode *yaml.Node
	var script, inline string
	d.mapping(n, path, d.process(&r.Process, map[string]field{
		"name":                  func(n *yaml.Node, p string) { d.str(n, p, &r.Name) },
		"script":                func(n *yaml.Node, p string) { d.str(n, p, &script); scriptNode = n },
		"lua":                   func(n *yaml.Node, p string) { d.str(n, p, &inline); inlineNode = n },
		"retry_on_script_error": func(n *yaml.Node, p string) { d.boolean(n, p, &r.RetryOnScriptError) },
	}))
	rn := resolve(n)
	if rn == nil || (rn.Kind != yaml.MappingNode && !isNull(rn)) {
		return r
	}
	if r.Name == "" {
		d.errorf(rn, join(path, "name"), "missing: every route needs a unique name")
	}
	switch {
	case scriptNode != nil && inlineNode != nil:
		d.errorf(inlineNode, join(path, "lua"), "give either script or lua, not both")
	case scriptNode != nil:
		file := script
		if !filepath.IsAbs(file) {
			file = filepath.Join(dir, file)
		}
		src, err := d.read.read(file)
		if err != nil {
			d.errorf(scriptNode, join(path, "script"), "%v", err)
			break
		}
		r.ScriptName, r.Source = file, string(src)
	case inlineNode != nil:
		// A literal block's text starts on the line after its indicator.
		first := inlineNode.Line
		if inlineNode.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
			first++
		}
		r.ScriptName, r.Source = d.file, strings.Repeat("\n", first-1)+inline
	default:
		d.errorf(rn, join(path, "script"), "missing: a route needs script (a file) or lua (inline)")
	}
	return r
}

func (d *decoder) signal(n *yaml.Node, path string, out *syscall.Signal) {
	var s string
	d.str(n, path, &s)
	if s == "" {
		return
	}
	sig, err := ParseSignal(s)
	if err != nil {
		d.errorf(n, path, "%v", err)
		return
	}
	*out = sig
}

// ParseRate reads starts per window: "5/10m" is at most 5 starts in any 10
// minutes.
func ParseRate(s string) (Rate, error) {
	n, per, ok := strings.Cut(s, "/")
	count, err := strconv.Atoi(strings.TrimSpace(n))
	if !ok || err != nil || count <= 0 {
		return Rate{}, fmt.Errorf("want starts per window like 5/10m, got %q", s)
	}
	d, err := time.ParseDuration(strings.TrimSpace(per))
	if err != nil || d <= 0 {
		return Rate{}, fmt.Errorf("want starts per window like 5/10m, got %q", s)
	}
	return Rate{N: count, Per: d}, nil
}
