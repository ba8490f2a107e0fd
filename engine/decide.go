// Package engine turns Alertmanager notifications into work: it decodes and
// validates the payload, decides what to run against the current rules (a
// pure step producing a Plan), hands the Plan to the runner and answers the
// HTTP request.
package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"syscall"

	"github.com/amx-dev/amx/luaapi"
	"github.com/amx-dev/amx/rules"
	"github.com/amx-dev/amx/runner"
)

// Plan is everything one notification asks for. It is pure data: deciding
// starts nothing, so the same Plan can be run, printed or compared.
type Plan struct {
	// Resolved holds the fingerprints of the notification's resolved alerts;
	// processes bound to them are signalled before any action starts.
	Resolved []string
	Actions  []runner.Action
	Skips    []Skip
	// Errors are routes whose script failed for an alert.
	Errors []RouteError
	// EnvDropped are the variables left out of the actions' environments,
	// each with the reason.
	EnvDropped []string
	// EnvCut is how many alerts' AMX_ALERT_<n>_* variables did not fit in
	// the environment. Then every action gets the whole notification in
	// AMX_PAYLOAD_FILE instead.
	EnvCut int
	// Occurrences identify, for each action, what it runs for, so that a
	// re-sent notification does not run what already succeeded: a
	// classic command runs for the notification's alerts as they are (a
	// group that changed is a new occurrence), a route's action for its
	// alert (fingerprint, startsAt, status). A `once` action runs for its
	// alert's fingerprint and startsAt.
	Occurrences []Occurrence
}

// Occurrence is what one action runs for. A zero Occurrence is never
// remembered.
type Occurrence struct {
	Key string
	// Once keeps a success for as long as amx runs; Fingerprint and Firing
	// let the alert's resolve forget it.
	Once        bool
	Fingerprint string
	Firing      bool
}

// Skip is a rule that did not produce an action, and why.
type Skip struct {
	Name   string
	Reason string
	// Detail is the reason a script gave to skip(); Fingerprint the alert
	// it ran for.
	Detail      string
	Fingerprint string
}

// RouteError is a route's script failing for one alert.
type RouteError struct {
	Route       string
	Fingerprint string
	Err         *luaapi.Error
	// Retry: the failure is reported to Alertmanager, which retries. A
	// timeout or memory stop is, with notify_on_failure; a script's own
	// error only with retry_on_script_error too, since a retry meets the
	// same error.
	Retry bool
}

// Skip reasons decided before anything runs.
const (
	SkipNoMatch = "nomatch"
	SkipLua     = "lua" // a script called skip()
	// SkipDuplicate: the action already succeeded for this occurrence.
	SkipDuplicate = "duplicate"
)

// Decide returns the Plan for a notification under a set of rules. It runs
// the routes' scripts, which only record what they ask for; nothing starts.
//
// Classic commands run for a firing notification when their match_labels
// equal the notification's commonLabels, as with the old executor. Each is
// bound to the first firing alert whose own labels match, so that alert's
// resolve signals it. (The old executor took the first matching alert even
// when it was a resolved one inside a firing group, leaving the process bound
// to an alert that had already resolved.) A resolved notification starts no
// classic command.
//
// A route's script runs once for every alert, firing or resolved, whose own
// labels pass the route's match_labels; what it execs is bound to that alert.
// Routes and commands are planned in the order of the config file.
func Decide(ctx context.Context, r *Rules, m *Message) Plan {
	var p Plan
	for i := range m.Alerts {
		if a := &m.Alerts[i]; a.Resolved() {
			p.Resolved = append(p.Resolved, a.Fingerprint)
		}
	}
	d := decision{plan: &p, msg: m}
	if r.Set.RoutesFirst {
		d.routes(ctx, r)
		d.commands(r.Set)
	} else {
		d.commands(r.Set)
		d.routes(ctx, r)
	}
	for i := range p.Actions {
		if a := &p.Actions[i]; p.EnvCut > 0 || a.PayloadStdin {
			a.Payload, a.PayloadFile = m.JSON(), p.EnvCut > 0
		}
	}
	return p
}

// decision carries what is built once per notification.
type decision struct {
	plan    *Plan
	msg     *Message
	env     []string             // the classic AMX_* variables, shared by every action
	envSize int                  // what env takes of the environment's budget
	notif   *luaapi.Notification // the notification as scripts see it
	// dropped holds plan.EnvDropped, to list each once.
	dropped map[string]bool
	digest  string // of the notification, once needed
}

func (d *decision) classicEnv() []string {
	if d.env == nil {
		w := classicEnv(d.msg)
		d.env, d.envSize, d.plan.EnvCut = w.env, w.size, w.cut
		d.drop(w.dropped)
	}
	return d.env
}

// notificationDigest identifies the notification's alerts as they are:
// the same alerts, started at the same times, in the same states.
func (d *decision) notificationDigest() string {
	if d.digest == "" {
		h := sha256.New()
		io.WriteString(h, d.msg.Status)
		for i := range d.msg.Alerts {
			a := &d.msg.Alerts[i]
			fmt.Fprintf(h, "\x00%s\x00%d\x00%s", a.Fingerprint, a.StartsAt.UnixNano(), a.Status)
		}
		d.digest = hex.EncodeToString(h.Sum(nil)[:16])
	}
	return d.digest
}

// alertOccurrence is the occurrence of an action for one alert: its
// fingerprint, start and status, whatever the notification around it.
// Without an alert or a fingerprint there is no occurrence to count.
func alertOccurrence(a *Alert, actionKey string, once bool) Occurrence {
	if a == nil || a.Fingerprint == "" {
		return Occurrence{}
	}
	kind := "a\x00"
	if once {
		kind = "o\x00"
	}
	return Occurrence{
		Key:         kind + a.Fingerprint + "\x00" + strconv.FormatInt(a.StartsAt.UnixNano(), 10) + "\x00" + a.Status + "\x00" + actionKey,
		Once:        once,
		Fingerprint: a.Fingerprint,
		Firing:      !a.Resolved(),
	}
}

// alertOf is the notification's alert with the fingerprint, nil without.
func alertOf(m *Message, fingerprint string) *Alert {
	for i := range m.Alerts {
		if fingerprint != "" && m.Alerts[i].Fingerprint == fingerprint {
			return &m.Alerts[i]
		}
	}
	return nil
}

// drop notes variables left out of an environment, each once.
func (d *decision) drop(names []string) {
	for _, n := range names {
		if !d.dropped[n] {
			if d.dropped == nil {
				d.dropped = map[string]bool{}
			}
			d.dropped[n] = true
			d.plan.EnvDropped = append(d.plan.EnvDropped, n)
		}
	}
}

func (d *decision) commands(set *rules.Set) {
	m := d.msg
	if m.Status != StatusFiring {
		return
	}
	for _, c := range set.Commands {
		if !c.Matches(m.CommonLabels) {
			d.plan.Skips = append(d.plan.Skips, Skip{Name: c.Name, Reason: SkipNoMatch})
			continue
		}
		act := newAction(c.Name, &c.Process, bind(c, m))
		act.Key = commandKey(c)
		act.Cmd, act.Args, act.CommonEnv = c.Cmd, c.Args, d.classicEnv()
		d.plan.Actions = append(d.plan.Actions, act)
		occurrence := Occurrence{Key: "n\x00" + d.notificationDigest() + "\x00" + act.Key}
		if c.Once {
			occurrence = alertOccurrence(alertOf(m, act.Fingerprint), act.Key, true)
		}
		d.plan.Occurrences = append(d.plan.Occurrences, occurrence)
	}
}

func (d *decision) routes(ctx context.Context, r *Rules) {
	defer func() {
		if d.notif != nil {
			releaseView(d.notif)
			d.notif = nil
		}
	}()
	for ri, route := range r.Set.Routes {
		for i := range d.msg.Alerts {
			a := &d.msg.Alerts[i]
			if !route.Matches(a.Labels) {
				continue
			}
			if d.notif == nil {
				d.notif = scriptView(d.msg)
			}
			res, err := r.vm.Run(ctx, r.scripts[ri], route.Name, d.notif, i)
			switch {
			case err != nil:
				lerr, ok := errors.AsType[*luaapi.Error](err)
				if !ok {
					lerr = &luaapi.Error{Msg: err.Error(), Kind: luaapi.KindError}
				}
				retry := route.NotifyOnFailure && (lerr.Kind != luaapi.KindError || route.RetryOnScriptError)
				d.plan.Errors = append(d.plan.Errors, RouteError{Route: route.Name, Fingerprint: a.Fingerprint,
					Err: lerr, Retry: retry})
			case res.Skipped:
				d.plan.Skips = append(d.plan.Skips, Skip{Name: route.Name, Reason: SkipLua,
					Detail: res.SkipReason, Fingerprint: a.Fingerprint})
			case len(res.Execs) > 0:
				classic := d.classicEnv()
				env := routeEnv(d.envSize, route.Name, a, res.Env)
				d.drop(env.dropped)
				for _, e := range res.Execs {
					act := routeAction(route, a, e, env.env)
					act.CommonEnv = classic
					d.plan.Actions = append(d.plan.Actions, act)
					d.plan.Occurrences = append(d.plan.Occurrences, alertOccurrence(a, act.Key, route.Once))
				}
			}
		}
	}
}

// newAction is an Action bound to a fingerprint, under the process settings
// of the command or route it comes from.
func newAction(name string, p *rules.Process, fingerprint string) runner.Action {
	return runner.Action{
		Name:            name,
		Fingerprint:     fingerprint,
		Max:             p.Max,
		Signal:          p.ResolvedSignal,
		IgnoreResolved:  p.IgnoreResolved,
		NotifyOnFailure: p.NotifyOnFailure,
		Timeout:         p.Timeout,
		PayloadStdin:    p.StdinPayload,
		KillAfter:       p.KillAfter,
		NoWait:          p.NoWait,
		WaitAtMost:      p.WaitAtMost,
	}
}

// routeAction turns one exec() into an Action; unset options take the
// route's defaults.
func routeAction(route *rules.Route, a *Alert, e luaapi.Exec, env []string) runner.Action {
	act := newAction(route.Name, &route.Process, a.Fingerprint)
	act.Key = RouteKey(route.Name, e.Cmd, e.Args)
	act.Cmd, act.Args, act.Env = route.Command(e.Cmd), e.Args, env
	if e.Max != nil {
		act.Max = *e.Max
	}
	if e.ResolvedSignal != nil {
		act.Signal = syscall.Signal(*e.ResolvedSignal)
	}
	if e.IgnoreResolved != nil {
		act.IgnoreResolved = *e.IgnoreResolved
	}
	if e.NotifyOnFailure != nil {
		act.NotifyOnFailure = *e.NotifyOnFailure
	}
	if e.Timeout != nil {
		act.Timeout = *e.Timeout
	}
	if e.Wait != nil {
		act.NoWait, act.WaitAtMost = !*e.Wait, 0
	}
	if e.WaitAtMost != nil {
		act.NoWait, act.WaitAtMost = false, *e.WaitAtMost
	}
	if e.Stdin != nil {
		act.Stdin, act.PayloadStdin = *e.Stdin, false
	}
	return act
}

// bind returns the fingerprint a command's process is bound to: the first
// firing alert whose labels match, else the first matching alert at all.
func bind(c *rules.Command, m *Message) string {
	first := -1
	for i := range m.Alerts {
		a := &m.Alerts[i]
		if !c.Matches(a.Labels) {
			continue
		}
		if !a.Resolved() {
			return a.Fingerprint
		}
		if first < 0 {
			first = i
		}
	}
	if first < 0 {
		return ""
	}
	return m.Alerts[first].Fingerprint
}

// commandKey identifies a classic command for max across notifications and
// reloads: the same command line is the same command.
func commandKey(c *rules.Command) string {
	return "cmd\x00" + c.Cmd + "\x00" + strings.Join(c.Args, "\x00")
}

// CommandKey is the Key of the actions of a classic command, by its name
// ("commands[0]"), or "" when the set has none of that name.
func CommandKey(set *rules.Set, name string) string {
	for _, c := range set.Commands {
		if c.Name == name {
			return commandKey(c)
		}
	}
	return ""
}

// RouteKey is the Key of the actions a route's script execs with a command
// (as the script wrote it) and arguments: the same route, command and
// arguments are the same action for max.
func RouteKey(route, cmd string, args []string) string {
	return "route\x00" + route + "\x00" + cmd + "\x00" + strings.Join(args, "\x00")
}
