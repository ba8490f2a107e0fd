// Package engine turns Alertmanager notifications into work: it decodes and
// validates the payload, decides what to run against the current rules (a
// pure step producing a Plan), hands the Plan to the runner and answers the
// HTTP request.
package engine

import (
	"strings"

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
}

// Skip is a rule that did not produce an action, and why.
type Skip struct {
	Name   string
	Reason string
}

// Skip reasons decided before anything runs.
const (
	SkipNoMatch = "nomatch"
)

// Decide returns the Plan for a notification under a set of rules.
//
// Classic commands run for a firing notification when their match_labels
// equal the notification's commonLabels, as with the old executor. Each is
// bound to the first firing alert whose own labels match, so that alert's
// resolve signals it. (The old executor took the first matching alert even
// when it was a resolved one inside a firing group, leaving the process bound
// to an alert that had already resolved.) A resolved notification starts no
// classic command.
func Decide(set *rules.Set, m *Message) Plan {
	var p Plan
	for i := range m.Alerts {
		if a := &m.Alerts[i]; a.Resolved() {
			p.Resolved = append(p.Resolved, a.Fingerprint)
		}
	}
	if m.Status != StatusFiring {
		return p
	}
	var env []string // shared by every action: built once, never modified
	for _, c := range set.Commands {
		if !c.Matches(m.CommonLabels) {
			p.Skips = append(p.Skips, Skip{Name: c.Name, Reason: SkipNoMatch})
			continue
		}
		if env == nil {
			env = Env(m)
		}
		p.Actions = append(p.Actions, runner.Action{
			Name:            c.Name,
			Key:             commandKey(c),
			Cmd:             c.Cmd,
			Args:            c.Args,
			Env:             env,
			Fingerprint:     bind(c, m),
			Max:             c.Max,
			Signal:          c.ResolvedSignal,
			IgnoreResolved:  c.IgnoreResolved,
			NotifyOnFailure: c.NotifyOnFailure,
			Timeout:         c.Timeout,
		})
	}
	return p
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
