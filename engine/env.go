package engine

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Env returns the AMX_* variables for a notification, with the names and
// values the old prometheus-am-executor set, plus AMX_GROUP_KEY and
// AMX_TRUNCATED_ALERTS. Values pass through untouched. The old executor
// emitted labels in map order; amx sorts them so the environment is
// reproducible. A label or annotation name that cannot be part of a
// variable name is escaped (see envPart), and a variable the environment
// cannot hold is left out (see envWriter).
func Env(m *Message) []string {
	return classicEnv(m).env
}

// classicEnv is Env, with what it left out and what it takes of the
// environment's budget.
func classicEnv(m *Message) envWriter {
	w := envWriter{env: make([]string, 0, min(envSize(m), 1<<14)), budget: classicBudget}
	w.classic(m)
	return w
}

// What exec can pass, on Linux: each variable at most MAX_ARG_STRLEN
// (128 KiB), and all of them with the arguments, and a pointer each, within
// ARG_MAX (2 MiB by default). Every variable amx sets counts against
// envBudget, which leaves the rest to amx's own environment and the
// command's arguments: the notification's variables take at most
// classicBudget, so that a route's own always have room.
const (
	maxVarBytes   = 128<<10 - 1
	envBudget     = 1 << 20
	classicBudget = envBudget - 256<<10
)

// envWriter builds an environment. A variable exec cannot pass would fail
// every command it goes to, so it is left out instead: a value with a NUL
// byte, one longer than exec allows, one past the budget, and an escaped
// name that spells a variable a real name already set. What is left out is
// listed in dropped, for the log. size counts what the variables take of
// exec's limit.
type envWriter struct {
	env     []string
	dropped []string
	size    int
	budget  int
	// cut is how many alerts' AMX_ALERT_<n>_* variables were left out
	// because they would not fit; full is set when a variable did not.
	cut  int
	full bool
}

// varSize is what a variable takes of exec's limit: its bytes, "=", the NUL
// and the pointer.
func varSize(name, value string) int { return len(name) + len(value) + 2 + 8 }

func (w *envWriter) set(name, value string) {
	switch {
	case strings.IndexByte(value, 0) >= 0:
		w.dropped = append(w.dropped, name+" (a NUL byte in its value)")
	case len(name)+1+len(value) > maxVarBytes:
		w.dropped = append(w.dropped, fmt.Sprintf("%s (%d bytes, more than exec takes)", name, len(value)))
	case w.size+varSize(name, value) > w.budget:
		w.full = true
		w.dropped = append(w.dropped, fmt.Sprintf("%s (%d bytes, past the environment's budget)", name, len(value)))
	default:
		w.env = append(w.env, name+"="+value)
		w.size += varSize(name, value)
	}
}

func (w *envWriter) classic(m *Message) {
	w.set("AMX_RECEIVER", m.Receiver)
	w.set("AMX_STATUS", m.Status)
	w.set("AMX_EXTERNAL_URL", m.ExternalURL)
	w.set("AMX_ALERT_LEN", strconv.Itoa(len(m.Alerts)))
	w.set("AMX_GROUP_KEY", m.GroupKey)
	w.set("AMX_TRUNCATED_ALERTS", strconv.Itoa(m.TruncatedAlerts))
	w.setMap("AMX_LABEL_", m.CommonLabels)
	w.setMap("AMX_GLABEL_", m.GroupLabels)
	w.setMap("AMX_ANNOTATION_", m.CommonAnnotations)
	// The alerts' variables go in alert by alert while they all fit; the
	// command then finds every alert in AMX_PAYLOAD_FILE (see Plan).
	budget := w.budget
	w.budget -= varSize("AMX_ALERTS_TRUNCATED", "1")
	for i := range m.Alerts {
		env, dropped, size := len(w.env), len(w.dropped), w.size
		w.full = false
		w.alert(i+1, &m.Alerts[i])
		if w.full {
			w.env, w.dropped, w.size = w.env[:env], w.dropped[:dropped], size
			w.cut = len(m.Alerts) - i
			w.budget = budget
			w.set("AMX_ALERTS_TRUNCATED", "1")
			break
		}
	}
	w.budget = budget
}

// alert sets the AMX_ALERT_<n>_* variables of alert n.
func (w *envWriter) alert(n int, a *Alert) {
	key := "AMX_ALERT_" + strconv.Itoa(n)
	w.set(key+"_STATUS", a.Status)
	w.set(key+"_START", unixString(a.StartsAt))
	w.set(key+"_END", unixString(a.EndsAt))
	w.set(key+"_URL", a.GeneratorURL)
	w.set(key+"_FINGERPRINT", a.Fingerprint)
	w.setMap(key+"_LABEL_", a.Labels)
	w.setMap(key+"_ANNOTATION_", a.Annotations)
}

func envSize(m *Message) int {
	n := 6 + len(m.CommonLabels) + len(m.GroupLabels) + len(m.CommonAnnotations)
	for i := range m.Alerts {
		n += 5 + len(m.Alerts[i].Labels) + len(m.Alerts[i].Annotations)
	}
	return n
}

// setMap sets prefix+name for every name of m, in name order. An escaped
// name that spells a name m also has (`U__a_2e_b` beside `a.b`) loses:
// the name as written wins, whatever the order.
func (w *envWriter) setMap(prefix string, m map[string]string) {
	var small [32]string // most label sets fit: no allocation
	keys := small[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		part := k
		if !plainPart(k) {
			part = escapePart(k)
			if _, taken := m[part]; taken {
				w.dropped = append(w.dropped, fmt.Sprintf("%s%s (escaped name %q, taken by the name as written)", prefix, part, k))
				continue
			}
		}
		w.set(prefix+part, m[k])
	}
}

// plainPart reports whether a label or annotation name can be part of a
// variable name as it is: ASCII letters, digits and underscores, which is
// every label name Prometheus allowed before UTF-8 names. These keep the
// old executor's spelling.
func plainPart(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// escapePart spells any other name the way Prometheus escapes UTF-8 names
// ("values" escaping): "U__", then letters and digits as they are, "_" as
// "__" and every other character as "_<hex code point>_". So `a.b` is
// `U__a_2e_b` and `a=b` is `U__a_3d_b`: an `=` or a NUL never reaches a
// variable's name, and no two names share a spelling.
func escapePart(name string) string {
	var b strings.Builder
	b.WriteString("U__")
	for _, r := range name {
		switch {
		case 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9':
			b.WriteRune(r)
		case r == '_':
			b.WriteString("__")
		default:
			fmt.Fprintf(&b, "_%x_", r)
		}
	}
	return b.String()
}

// unixString is the old executor's time format: Unix seconds, "0" for the
// zero time that Alertmanager sends as endsAt of a firing alert.
func unixString(t time.Time) string {
	return strconv.FormatInt(unixSeconds(t), 10)
}

// unixSeconds is a time as Unix seconds, 0 for the zero time.
func unixSeconds(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// routeEnv is what a command a route's script exec'd gets besides the
// notification's classic variables (which every action shares, and which
// took classicSize of the budget): AMX_ROUTE, the variables of the alert
// the script ran for, and then what the script set with env(), which has
// the budget first: the script asked for it by name.
func routeEnv(classicSize int, route string, a *Alert, extra []string) envWriter {
	asked := envWriter{env: make([]string, 0, len(extra)), budget: envBudget - classicSize}
	for _, kv := range extra {
		name, value, _ := strings.Cut(kv, "=")
		asked.set(name, value)
	}
	w := envWriter{env: make([]string, 0, 3+len(a.Labels)+len(a.Annotations)+len(extra)), size: classicSize + asked.size, budget: envBudget}
	w.set("AMX_ROUTE", route)
	w.set("AMX_ALERT_FINGERPRINT", a.Fingerprint)
	w.set("AMX_ALERT_STATUS", a.Status)
	w.setMap("AMX_ALERT_LABEL_", a.Labels)
	w.setMap("AMX_ALERT_ANNOTATION_", a.Annotations)
	w.env = append(w.env, asked.env...)
	w.dropped = append(w.dropped, asked.dropped...)
	w.size += asked.size
	return w
}
