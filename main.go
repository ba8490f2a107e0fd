// Command amx receives Prometheus Alertmanager webhook notifications and runs
// commands for them. It is the successor of prometheus-am-executor and runs
// its executor.yml files and command lines unchanged.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/amx-dev/amx/engine"
	"github.com/amx-dev/amx/rules"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr, hangups()))
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

amx receives Alertmanager webhook notifications and runs commands for them:
the script given on the command line (for every alert) and the commands of
the config file (-f).

Options:
`

// run is amx's whole life, from arguments to exit code, so that tests can
// drive it without a process of its own; a value on reload reloads the
// configuration.
func run(ctx context.Context, args []string, stderr io.Writer, reload <-chan struct{}) int {
	flags := flag.NewFlagSet("amx", flag.ContinueOnError)
	flags.SetOutput(stderr)
	file := flags.String("f", "", "YAML config file to use")
	listen := flags.String("l", "", `HTTP address to listen on (default "`+rules.DefaultListenAddress+`")`)
	verbose := flags.Bool("v", false, "Enable verbose/debug logging")
	watch := flags.Bool("watch", true, "Reload when the config file or its Lua scripts change")
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

	src := rules.Source{File: *file, ListenAddress: *listen, Verbose: *verbose, Script: flags.Args()}
	cfg, err := rules.Load(src)
	if err != nil {
		fmt.Fprintf(stderr, "amx: invalid configuration:\n%v\n", err)
		return 1
	}
	// The level follows verbose in the config file across reloads.
	level := new(slog.LevelVar)
	if cfg.Verbose {
		level.Set(slog.LevelDebug)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	compiled, err := engine.Compile(cfg.Set, log)
	if err != nil {
		fmt.Fprintf(stderr, "amx: invalid configuration:\n%v\n", err)
		return 1
	}

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
		"commands", commands, "routes", routes, "watch", *watch && cfg.File != "")
	opts := engine.ServeOptions{
		Options: engine.Options{Config: cfg, Rules: compiled, Log: log, Source: src, Level: level},
		Watch:   *watch,
		Reload:  reload,
	}
	if err := engine.Serve(ctx, ln, opts); err != nil {
		log.Error("serve", "err", err)
		return 1
	}
	return 0
}
