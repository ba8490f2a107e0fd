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
	"strings"
	"syscall"
	"time"

	"github.com/amx-dev/amx/engine/state"
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
	// Alerts are the alerts the actions are bound to, one per action; nil
	// for a classic command bound to none.
	Alerts []*Alert
	Skips  []Skip
	// Errors are routes whose script failed for an alert.
	Errors []RouteError
	// EnvDropped are the variables left out of the actions' environments,
	// each with the reason.
	EnvDropped []string
	// EnvCut is how many alerts' AMX_ALERT_<n>_* variables did not fit in
	// the environment. Then every action gets the whole notification in
	// AMX_PAYLOAD_FILE instead.
	EnvCut int
	// Claims are what admission asks the state about each action: the
	// action and occurrence a re-sent notification repeats, the key max
	// and cooldown count per, the limits.
	Claims []state.Claim
	// Tombstones are the occurrences of the notification's resolved
	// alerts: a late firing copy of one starts nothing.
	Tombstones []string
	// Writes are the state changes the scripts asked for, applied at
	// admission once per route and occurrence.
	Writes []state.Writes
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
	SkipDuplicate = state.Duplicate
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
//
// Scripts read the state through read; nil reads nothing. Nothing is
// written: the writes scripts ask for are in the Plan.
func Decide(ctx context.Context, r *Rules, m *Message, read luaapi.StateReader) Plan {
	var p Plan
	for i := range m.Alerts {
		if a := &m.Alerts[i]; a.Resolved() {
			p.Resolved = append(p.Resolved, a.Fingerprint)
			if occ := occurrence(a); occ != "" {
				p.Tombstones = append(p.Tombstones, occ)
			}
		}
	}
	d := decision{plan: &p, msg: m, read: read}
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
	read    luaapi.StateReader
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

// occurrence names an alert's occurrence: its fingerprint and start. A
// resolve ends it; the alert firing again is a new one. Without a
// fingerprint there is no occurrence to count.
func occurrence(a *Alert) string {
	if a == nil || a.Fingerprint == "" {
		return ""
	}
	return a.Fingerprint + "@" + a.StartsAt.UTC().Format(time.RFC3339Nano)
}

// keyOf is an action's key for max and cooldown: the values of the by
// labels on the alert it is bound to, or, without by or when one of them is
// missing, the alert's fingerprint.
func keyOf(by []string, a *Alert) string {
	if a == nil {
		return ""
	}
	if len(by) == 0 {
		return a.Fingerprint
	}
	values := make([]string, len(by))
	for i, l := range by {
		v, ok := a.Labels[l]
		if !ok {
			return a.Fingerprint
		}
		values[i] = v
	}
	return strings.Join(values, ",")
}

// newClaim is the claim of an action bound to an alert under a process's
// limits. An action bound to no alert has no key: max does not count it,
// as with the old executor.
func newClaim(action, key string, p *rules.Process, a *Alert) state.Claim {
	c := state.Claim{Action: action, Key: key, Max: p.Max, Cooldown: p.Cooldown,
		Rate: state.RateLimit{N: p.Rate.N, Per: p.Rate.Per}, Once: p.Once,
		Occurrence: occurrence(a), Firing: a != nil && !a.Resolved()}
	if key == "" {
		c.Max, c.Cooldown = 0, 0
	}
	return c
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
		act.Cmd, act.Args, act.CommonEnv = c.Cmd, c.Args, d.classicEnv()
		d.plan.Actions = append(d.plan.Actions, act)
		bound := alertOf(m, act.Fingerprint)
		d.plan.Alerts = append(d.plan.Alerts, bound)
		action := commandAction(c)
		claim := newClaim(action, keyOf(c.By, bound), &c.Process, bound)
		// A classic command runs for the group as it is: the same alerts
		// in the same states are a copy, a group that changed is new.
		claim.ID = state.Join(action, "group", d.notificationDigest())
		if c.Once {
			claim.ID = onceID(action, claim.Occurrence)
		}
		d.plan.Claims = append(d.plan.Claims, claim)
	}
}

// onceID is the claim of a once action: once per action and occurrence.
// Without an occurrence, there is nothing to remember.
func onceID(action, occurrence string) string {
	if occurrence == "" {
		return ""
	}
	return state.Join(action, occurrence)
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
				d.notif.State = d.read
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
					d.plan.Alerts = append(d.plan.Alerts, a)
					d.plan.Claims = append(d.plan.Claims, routeClaim(route, a, e))
				}
			}
			if len(res.Writes) > 0 && !res.Skipped && err == nil {
				d.plan.Writes = append(d.plan.Writes, scriptWrites(route.Name, a, res.Writes))
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
		Signal:          p.ResolvedSignal,
		IgnoreResolved:  p.IgnoreResolved,
		NotifyOnFailure: p.NotifyOnFailure,
		Timeout:         p.Timeout,
		PayloadStdin:    p.StdinPayload,
		KillAfter:       p.KillAfter,
		NoWait:          p.NoWait,
		WaitAtMost:      p.WaitAtMost,
		SeparateStderr:  p.SeparateStderr,
	}
}

// routeAction turns one exec() into an Action; unset options take the
// route's defaults.
func routeAction(route *rules.Route, a *Alert, e luaapi.Exec, env []string) runner.Action {
	act := newAction(route.Name, &route.Process, a.Fingerprint)
	act.Cmd, act.Args, act.Env = route.Command(e.Cmd), e.Args, env
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

// routeClaim is the claim of one exec(): the action is the route and the
// command, with its arguments unless a key is set (by the route's by, or
// exec{key=}); a once action runs once per occurrence, any other once per
// occurrence and status.
func routeClaim(route *rules.Route, a *Alert, e luaapi.Exec) state.Claim {
	key, keyed := keyOf(route.By, a), len(route.By) > 0
	if e.Key != nil {
		key, keyed = *e.Key, true
	}
	action := RouteAction(route.Name, e.Cmd, e.Args, keyed)
	c := newClaim(action, key, &route.Process, a)
	if e.Max != nil {
		c.Max = *e.Max
	}
	if e.Cooldown != nil && key != "" {
		c.Cooldown = *e.Cooldown
	}
	if c.Occurrence != "" {
		c.ID = state.Join(action, c.Occurrence, a.Status)
	}
	if c.Once {
		c.ID = onceID(action, c.Occurrence)
	}
	return c
}

// scriptWrites are the writes of one invocation, applied once per route
// and occurrence.
func scriptWrites(route string, a *Alert, ws []luaapi.StateWrite) state.Writes {
	out := state.Writes{ID: state.Join(route, a.Fingerprint, a.StartsAt.UTC().Format(time.RFC3339Nano), a.Status),
		Namespace: route, Ops: make([]state.Write, len(ws))}
	for i, w := range ws {
		out.Ops[i] = state.Write{Op: w.Op, Key: w.Key, TTL: w.TTL,
			Value: state.Value{Str: w.Value.Str, Num: w.Value.Num, IsNum: w.Value.IsNum}}
	}
	return out
}

// commandAction identifies a classic command across notifications and
// reloads: the same command line is the same action.
func commandAction(c *rules.Command) string {
	return "cmd " + c.String()
}

// CommandAction is the action of a classic command, by its name
// ("commands[0]"), or "" when the set has none of that name.
func CommandAction(set *rules.Set, name string) string {
	for _, c := range set.Commands {
		if c.Name == name {
			return commandAction(c)
		}
	}
	return ""
}

// RouteAction is the action of what a route's script execs: the route and
// the command (as the script wrote it), and the arguments unless the action
// is keyed.
func RouteAction(route, cmd string, args []string, keyed bool) string {
	action := "route " + route + ": " + cmd
	if !keyed && len(args) > 0 {
		action += " " + strings.Join(args, " ")
	}
	return action
}
