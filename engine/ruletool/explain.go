package ruletool

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/amx-dev/amx/engine"
	"github.com/amx-dev/amx/engine/state"
	"github.com/amx-dev/amx/rules"
	"github.com/amx-dev/amx/runner"
)

// Explain prints the Plan of a notification under a configuration: for each
// command and route whether it matched and why, each action with its
// settings and each skip with its reason. With env, each action's full
// environment is printed too, and with logs (given to engine.Load as its
// logger) the lines each script wrote with log(). Nothing runs. It reports
// whether every script ran without error.
func Explain(w io.Writer, r *engine.Rules, m *engine.Message, env bool, logs *ScriptLogs) bool {
	// Offline: scripts read, and actions are admitted over, an empty
	// scratch state.
	scratch := state.NewMemory(state.Options{})
	defer scratch.Close()
	plan := engine.Decide(context.Background(), r, m, engine.StateReader(context.Background(), scratch))
	adm, err := engine.Admit(context.Background(), scratch, &plan, 0, nil)
	if err != nil {
		fmt.Fprintf(w, "admission: %v\n", err)
	}
	fmt.Fprintf(w, "notification: %s, %d alerts, receiver %q, group_key %q\n", m.Status, len(m.Alerts), m.Receiver, m.GroupKey)
	for _, a := range m.Alerts {
		fmt.Fprintf(w, "  alert %s %s %s\n", a.Fingerprint, a.Status, labels(a.Labels))
	}
	if len(plan.Resolved) > 0 {
		fmt.Fprintf(w, "resolved: live processes bound to %s get their resolved_signal\n", strings.Join(plan.Resolved, ", "))
	}
	commands := func() {
		for _, c := range r.Set.Commands {
			fmt.Fprintf(w, "\n%s (%s):\n", c.Name, c.String())
			switch {
			case m.Status != engine.StatusFiring:
				fmt.Fprintf(w, "  not run: a resolved notification starts no classic command\n")
			case !c.Matches(m.CommonLabels):
				fmt.Fprintf(w, "  no match: match_labels %s are not all in commonLabels %s\n", labels(c.MatchLabels), labels(m.CommonLabels))
			default:
				fmt.Fprintf(w, "  matched commonLabels %s\n", labels(c.MatchLabels))
			}
			printActions(w, plan, adm, c.Name, "", env)
		}
	}
	routes := func() {
		for _, route := range r.Set.Routes {
			fmt.Fprintf(w, "\nroute %s (%s):\n", route.Name, route.ScriptName)
			for _, a := range m.Alerts {
				if !route.Matches(a.Labels) {
					fmt.Fprintf(w, "  alert %s: no match: match_labels %s\n", a.Fingerprint, labels(route.MatchLabels))
					continue
				}
				fmt.Fprintf(w, "  alert %s: script ran\n", a.Fingerprint)
				for _, line := range logs.of(route.Name, a.Fingerprint) {
					fmt.Fprintf(w, "    log: %s\n", line)
				}
				n := printActions(w, plan, adm, route.Name, a.Fingerprint, env)
				for _, s := range plan.Skips {
					if s.Name == route.Name && s.Fingerprint == a.Fingerprint {
						fmt.Fprintf(w, "    skip: %s\n", s.Detail)
						n++
					}
				}
				for _, e := range plan.Errors {
					if e.Route == route.Name && e.Fingerprint == a.Fingerprint {
						fmt.Fprintf(w, "    error (%s): %s\n", e.Err.Kind, e.Err.Msg)
						n++
					}
				}
				if n == 0 {
					fmt.Fprintf(w, "    nothing: the script returned without exec\n")
				}
			}
		}
	}
	if r.Set.RoutesFirst {
		routes()
		commands()
	} else {
		commands()
		routes()
	}
	return len(plan.Errors) == 0
}

// printActions prints the actions of one rule (and alert, for a route).
func printActions(w io.Writer, plan engine.Plan, adm engine.Admission, name, fingerprint string, env bool) int {
	n := 0
	for i, a := range plan.Actions {
		if a.Name != name || (fingerprint != "" && a.Fingerprint != fingerprint) {
			continue
		}
		n++
		c := plan.Claims[i]
		fmt.Fprintf(w, "    exec: %s %q\n", a.Cmd, a.Args)
		if i < len(adm.Reasons) && adm.Reasons[i] != "" {
			fmt.Fprintf(w, "      skip: %s\n", adm.Reasons[i])
		}
		fmt.Fprintf(w, "      fingerprint=%s key=%s max=%d resolved_signal=%s ignore_resolved=%t notify_on_failure=%t timeout=%s%s%s\n",
			orNone(a.Fingerprint), orNone(c.Key), c.Max, signalName(a), a.IgnoreResolved, a.NotifyOnFailure, a.Timeout, extras(a), limits(c))
		for _, kv := range a.Environ() {
			if env || !strings.HasPrefix(kv, "AMX_") {
				fmt.Fprintf(w, "      %s\n", kv)
			}
		}
	}
	return n
}

// extras are the wait, and the settings an action has only when they differ
// from the default, so that the common line stays short.
func extras(a runner.Action) string {
	var b strings.Builder
	// The wait always: it decides when Alertmanager gets its answer.
	switch {
	case a.NoWait:
		b.WriteString(" wait=false")
	case a.WaitAtMost > 0:
		fmt.Fprintf(&b, " wait=%s", a.WaitAtMost)
	default:
		b.WriteString(" wait=true")
	}
	if a.PayloadStdin {
		b.WriteString(" stdin=payload")
	}
	if a.KillAfter != rules.DefaultKillAfter && a.Signal != 0 && a.Signal != rules.DefaultSignal {
		fmt.Fprintf(&b, " kill_after=%s", a.KillAfter)
	}
	return b.String()
}

// limits are the admission settings an action has only when set.
func limits(c state.Claim) string {
	var b strings.Builder
	if c.Once {
		b.WriteString(" once=true")
	}
	if c.Cooldown > 0 {
		fmt.Fprintf(&b, " cooldown=%s", c.Cooldown)
	}
	if c.Rate.N > 0 {
		fmt.Fprintf(&b, " rate=%d/%s", c.Rate.N, c.Rate.Per)
	}
	return b.String()
}

func signalName(a runner.Action) string {
	if a.Signal == 0 {
		return rules.SignalName(rules.DefaultSignal)
	}
	return rules.SignalName(a.Signal)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func labels(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%q", k, m[k]))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
