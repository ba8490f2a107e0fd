// Command amx receives Prometheus Alertmanager webhook notifications and runs
// commands for them. It is the successor of prometheus-am-executor and runs
// its executor.yml files and command lines unchanged.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"regexp"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/amx-dev/amx/engine"
	"github.com/amx-dev/amx/engine/apiclient"
	"github.com/amx-dev/amx/engine/history"
	"github.com/amx-dev/amx/engine/ruletool"
	"github.com/amx-dev/amx/engine/state"
	"github.com/amx-dev/amx/rules"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, hangups()))
}

// hangups turns SIGHUP into reload requests. Requests that arrive while one
// is pending coalesce: one reload reads the newest files anyway.
func hangups() <-chan struct{} {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP)
	reload := make(chan struct{}, 1)
	go func() {
		for range sig {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()
	return reload
}

const usage = `Usage: amx [options] [script [args...]]
       amx check [-f CONFIG] CONFIG...
       amx test [--run REGEX] [--junit FILE] TESTFILE...
       amx explain -f CONFIG [--env] PAYLOAD.json|-
       amx state ls [--url URL] [--prefix PREFIX] [-o json] | rm [--url URL] PREFIX
       amx ps [--url URL] [-o json]
       amx runs [--url URL] [--action A] [--alertname N] [--outcome O] [--limit N] [-o json] [RUN]
       amx version

amx receives Alertmanager webhook notifications and runs commands for them:
the script given on the command line (for every alert) and the commands of
the config file (-f). check validates configs, test runs rule unit tests and
explain prints what a notification would run; these three start nothing.
state lists or removes what a running amx remembers (its delivery state);
ps lists the processes it runs now, runs what it ran and refused (RUN: one
run, with its output), as its status page shows them.

Options:
`

// subcommands are the words amx reads as a subcommand in first place; a
// command-line script of one of these names needs a path.
var subcommands = map[string]bool{"check": true, "test": true, "explain": true, "state": true, "ps": true, "runs": true, "version": true, "help": true}

// buildVersion is the version a release build sets with
// -ldflags "-X main.buildVersion=v1.2.3" (the Dockerfile and the packages
// do); without it, the module's version as go build recorded it.
var buildVersion string

// version is amx's version, the commit it was built from and the Go
// release that built it, as the build recorded them.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "amx (unknown version)"
	}
	v := "amx " + info.Main.Version
	if buildVersion != "" {
		v = "amx " + buildVersion
	}
	var commit, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			commit = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = " (modified)"
			}
		}
	}
	if commit != "" {
		v += " commit " + commit + modified
	}
	return v + " " + info.GoVersion
}

// run is amx's whole life, from arguments to exit code, so that tests can
// drive it without a process of its own; a value on reload reloads the
// configuration.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, reload <-chan struct{}) int {
	if len(args) > 0 {
		switch args[0] {
		case "check":
			return check(args[1:], stdout, stderr)
		case "test":
			return test(args[1:], stdout, stderr)
		case "explain":
			return explain(args[1:], stdout, stderr)
		case "state":
			return stateCmd(args[1:], stdout, stderr)
		case "ps":
			return psCmd(args[1:], stdout, stderr)
		case "runs":
			return runsCmd(args[1:], stdout, stderr)
		case "version", "--version", "-version":
			fmt.Fprintln(stdout, version())
			return 0
		case "help":
			fmt.Fprint(stdout, usage)
			return 0
		}
	}
	flags := flag.NewFlagSet("amx", flag.ContinueOnError)
	flags.SetOutput(stderr)
	file := flags.String("f", "", "YAML config file to use")
	listen := flags.String("l", "", `HTTP address to listen on (default "`+rules.DefaultListenAddress+`")`)
	verbose := flags.Bool("v", false, "Enable verbose/debug logging (--log.level=debug)")
	logLevel := flags.String("log.level", "info", "Only log messages with the given severity or above: debug, info, warn, error")
	logFormat := flags.String("log.format", "logfmt", "Output format of log messages: logfmt or json")
	watch := flags.Bool("watch", true, "Reload when the config file or its Lua scripts change")
	showVersion := flags.Bool("version", false, "Print the version and exit")
	recordDir := flags.String("record-dir", "", "Write every notification received to this directory, for amx test")
	recordMax := flags.Int("record-max-files", 1000, "Keep at most this many recorded notifications, removing the oldest")
	recordBytes := flags.String("record-max-bytes", "1GiB", "Keep at most this many bytes of recorded notifications (256MiB, 1GiB), removing the oldest")
	flags.Usage = func() {
		fmt.Fprint(flags.Output(), usage)
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}

	if *showVersion {
		fmt.Fprintln(stdout, version())
		return 0
	}
	if script := flags.Args(); len(script) > 0 && subcommands[script[0]] {
		// amx -f amx.yml test would otherwise serve, running a command
		// named test for every alert.
		fmt.Fprintf(stderr, "amx: %q is a subcommand: put it first (amx %s ...), or give a script of that name with a path (./%[2]s)\n", script[0], script[0])
		return 2
	}
	src := rules.Source{File: *file, ListenAddress: *listen, Script: flags.Args()}
	// The level follows verbose in the config file, across reloads too.
	var base slog.Level
	if err := base.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "amx: --log.level: want debug, info, warn or error, got %q\n", *logLevel)
		return 2
	}
	if *verbose {
		base = slog.LevelDebug
	}
	level := new(slog.LevelVar)
	level.Set(base)
	var handler slog.Handler
	switch *logFormat {
	case "logfmt":
		handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
	case "json":
		handler = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})
	default:
		fmt.Fprintf(stderr, "amx: --log.format: want logfmt or json, got %q\n", *logFormat)
		return 2
	}
	log := slog.New(handler)
	cfg, compiled, err := engine.Load(src, log)
	if err != nil {
		fmt.Fprintf(stderr, "amx: invalid configuration:\n%v\n", err)
		return 1
	}
	if cfg.Verbose {
		level.Set(slog.LevelDebug)
	}

	store, err := openState(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "amx: %v\n", err)
		return 1
	}
	defer store.Close()

	ln, err := net.Listen("tcp", cfg.ListenAddress)
	if err != nil {
		log.Error("listen", "err", err)
		return 1
	}
	commands := make([]string, len(cfg.Set.Commands))
	for i, c := range cfg.Set.Commands {
		commands[i] = c.String()
	}
	routes := make([]string, len(cfg.Set.Routes))
	for i, r := range cfg.Set.Routes {
		routes[i] = r.Name
	}
	log.Info("listening", "address", ln.Addr().String(), "tls", cfg.TLSCert != "", "config", cfg.File,
		"auth", cfg.Auth.Kinds(), "commands", commands, "routes", routes, "watch", *watch && cfg.File != "",
		"state", store.String())
	var record *engine.Recorder
	if *recordDir != "" {
		var size uint64
		if size, err = rules.ParseSize(*recordBytes); err == nil {
			record, err = engine.NewRecorder(*recordDir, *recordMax, int64(min(size, 1<<62)))
		} else {
			err = fmt.Errorf("--record-max-bytes: %w", err)
		}
		if err != nil {
			ln.Close()
			fmt.Fprintf(stderr, "amx: %v\n", err)
			return 1
		}
	}
	opts := engine.ServeOptions{
		Options: engine.Options{Config: cfg, Rules: compiled, Log: log, Source: src, Level: level, BaseLevel: base, Record: record,
			State: store, Version: version()},
		Watch:  *watch,
		Reload: reload,
	}
	if err := engine.Serve(ctx, ln, opts); err != nil {
		log.Error("serve", "err", err)
		return 1
	}
	return 0
}

// openState opens the delivery state the configuration asks for: Redis
// with state.redis, a bbolt file with state.path, else memory.
func openState(cfg *rules.Config, log *slog.Logger) (state.Store, error) {
	opts := state.Options{Retention: cfg.State.Retention, Log: log}
	if r := cfg.State.Redis; r != nil {
		client := redis.NewClient(&redis.Options{Addr: r.Address, Username: r.Username, Password: r.Password, DB: r.DB,
			TLSConfig: r.TLS, DialTimeout: r.Timeout, ReadTimeout: r.Timeout, WriteTimeout: r.Timeout})
		return state.OpenRedis(context.Background(), state.RedisOptions{Options: opts, Client: client, Prefix: r.KeyPrefix,
			LeaseTTL: r.LeaseTTL, Timeout: r.Timeout})
	}
	if cfg.State.Path == "" {
		return state.NewMemory(opts), nil
	}
	return state.OpenBolt(cfg.State.Path, cfg.State.LockTimeout, opts)
}

// stateCmd is amx state ls|rm: what a running amx remembers, read or
// removed through its API.
func stateCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "ls" && args[0] != "rm") {
		fmt.Fprintln(stderr, "Usage: amx state ls [--url URL] [--prefix PREFIX] [-o json] | rm [--url URL] PREFIX")
		return 2
	}
	verb := args[0]
	flags := flag.NewFlagSet("amx state "+verb, flag.ContinueOnError)
	flags.SetOutput(stderr)
	client := apiclient.Flags(flags)
	prefix := flags.String("prefix", "", "List only the entries whose ID starts with this (cooldown/, value/ROUTE/)")
	output := flags.String("o", "table", "Output format: table or json")
	if !parseClient(flags, client, args[1:], stderr) {
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if verb == "rm" {
		if flags.NArg() != 1 || flags.Arg(0) == "" {
			fmt.Fprintln(stderr, "amx state rm: give the prefix of the entries to remove, e.g. cooldown/")
			return 2
		}
		n, err := client.DeleteState(ctx, flags.Arg(0))
		if err != nil {
			fmt.Fprintf(stderr, "amx state rm: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%d entries removed\n", n)
		return 0
	}
	l, err := client.State(ctx, *prefix)
	if err != nil {
		fmt.Fprintf(stderr, "amx state ls: %v\n", err)
		return 1
	}
	if *output == "json" {
		printJSON(stdout, l)
		return 0
	}
	apiclient.PrintState(stdout, l, time.Now())
	return 0
}

// psCmd is amx ps: the processes a running amx runs now.
func psCmd(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("amx ps", flag.ContinueOnError)
	flags.SetOutput(stderr)
	client := apiclient.Flags(flags)
	output := flags.String("o", "table", "Output format: table or json")
	if !parseClient(flags, client, args, stderr) {
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := client.Processes(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "amx ps: %v\n", err)
		return 1
	}
	if *output == "json" {
		printJSON(stdout, l)
		return 0
	}
	apiclient.PrintProcesses(stdout, l)
	return 0
}

// runsCmd is amx runs: what a running amx ran and refused lately, or one
// run with its output.
func runsCmd(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("amx runs", flag.ContinueOnError)
	flags.SetOutput(stderr)
	client := apiclient.Flags(flags)
	var f history.Filter
	flags.StringVar(&f.Action, "action", "", "Only the runs of this command or route (commands[0], a route's name)")
	flags.StringVar(&f.Alertname, "alertname", "", "Only the runs for alerts of this name")
	flags.StringVar(&f.Outcome, "outcome", "", "Only the runs with this outcome: running, succeeded, failed, resolved, skipped, unknown")
	limit := flags.Int("limit", 20, "Show the last this many runs (1 to 1000)")
	output := flags.String("o", "table", "Output format: table or json")
	if !parseClient(flags, client, args, stderr) {
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if flags.NArg() > 0 {
		id, err := strconv.ParseUint(flags.Arg(0), 10, 64)
		if err != nil || flags.NArg() > 1 {
			fmt.Fprintf(stderr, "amx runs: give one run number, not %q\n", flags.Args())
			return 2
		}
		r, err := client.Run(ctx, id)
		if err != nil {
			fmt.Fprintf(stderr, "amx runs: %v\n", err)
			return 1
		}
		if *output == "json" {
			printJSON(stdout, r)
		} else {
			apiclient.PrintRun(stdout, r)
		}
		return 0
	}
	l, err := client.Runs(ctx, f, *limit)
	if err != nil {
		fmt.Fprintf(stderr, "amx runs: %v\n", err)
		return 1
	}
	if *output == "json" {
		printJSON(stdout, l)
		return 0
	}
	apiclient.PrintRuns(stdout, l)
	return 0
}

// parseClient parses the flags of a client subcommand and reads the
// secrets they name.
func parseClient(flags *flag.FlagSet, client *apiclient.Client, args []string, stderr io.Writer) bool {
	if err := flags.Parse(args); err != nil {
		return false
	}
	if err := client.Load(); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", flags.Name(), err)
		return false
	}
	return true
}

func printJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func check(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("amx check", flag.ContinueOnError)
	flags.SetOutput(stderr)
	// -f as for the server and explain, so that the same command line
	// with "check" in front checks what the server would load.
	file := flags.String("f", "", "YAML config file to check, as well as any CONFIG")
	flags.Usage = func() {
		fmt.Fprintln(flags.Output(), "Usage: amx check [-f CONFIG] CONFIG...")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		return 2 // Parse printed the error and the usage
	}
	files := flags.Args()
	if *file != "" {
		files = append([]string{*file}, files...)
	}
	if len(files) == 0 {
		flags.Usage()
		return 2
	}
	if !ruletool.Check(stdout, files) {
		return 1
	}
	return 0
}

func test(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("amx test", flag.ContinueOnError)
	flags.SetOutput(stderr)
	runExpr := flags.String("run", "", "Run only the tests whose name matches this regular expression")
	junit := flags.String("junit", "", "Write a JUnit XML report to this file")
	flags.Usage = func() {
		fmt.Fprintln(flags.Output(), "Usage: amx test [--run REGEX] [--junit FILE] TESTFILE...")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		return ruletool.ExitBroken // Parse printed the error and the usage
	}
	if flags.NArg() == 0 {
		flags.Usage()
		return ruletool.ExitBroken
	}
	opts := ruletool.TestOptions{JUnit: *junit}
	if *runExpr != "" {
		re, err := regexp.Compile(*runExpr)
		if err != nil {
			fmt.Fprintf(stderr, "amx test: --run: %v\n", err)
			return ruletool.ExitBroken
		}
		opts.Run = re
	}
	return ruletool.Test(stdout, flags.Args(), opts)
}

func explain(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("amx explain", flag.ContinueOnError)
	flags.SetOutput(stderr)
	file := flags.String("f", "", "YAML config file")
	env := flags.Bool("env", false, "Print each action's full environment, AMX_* variables included")
	flags.Usage = func() {
		fmt.Fprintln(flags.Output(), "Usage: amx explain -f CONFIG [--env] PAYLOAD.json|-")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		return 2 // Parse printed the error and the usage
	}
	if *file == "" {
		fmt.Fprintln(stderr, "amx explain: -f CONFIG is required")
		flags.Usage()
		return 2
	}
	if flags.NArg() != 1 {
		flags.Usage()
		return 2
	}
	logs := new(ruletool.ScriptLogs)
	_, compiled, err := engine.Load(rules.Source{File: *file}, logs.Logger())
	if err != nil {
		fmt.Fprintf(stderr, "amx: invalid configuration:\n%v\n", err)
		return 1
	}
	var body []byte
	if name := flags.Arg(0); name == "-" {
		body, err = io.ReadAll(os.Stdin)
	} else {
		body, err = os.ReadFile(name)
	}
	if err != nil {
		fmt.Fprintf(stderr, "amx explain: %v\n", err)
		return 1
	}
	msg, err := engine.Decode(body)
	if err != nil {
		fmt.Fprintf(stderr, "amx explain: %s: %v\n", flags.Arg(0), err)
		return 1
	}
	if !ruletool.Explain(stdout, compiled, msg, *env, logs) {
		return 1 // a script failed: shown in the output
	}
	return 0
}
