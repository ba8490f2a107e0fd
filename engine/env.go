package engine

import (
	"slices"
	"strconv"
	"time"
)

// Env returns the AMX_* variables for a notification, with the names and
// values the old prometheus-am-executor set, plus AMX_GROUP_KEY and
// AMX_TRUNCATED_ALERTS. Values pass through untouched. The old executor
// emitted labels in map order; amx sorts them so the environment is
// reproducible.
func Env(m *Message) []string {
	env := make([]string, 0, envSize(m))
	env = append(env,
		"AMX_RECEIVER="+m.Receiver,
		"AMX_STATUS="+m.Status,
		"AMX_EXTERNAL_URL="+m.ExternalURL,
		"AMX_ALERT_LEN="+strconv.Itoa(len(m.Alerts)),
		"AMX_GROUP_KEY="+m.GroupKey,
		"AMX_TRUNCATED_ALERTS="+strconv.Itoa(m.TruncatedAlerts),
	)
	env = appendMap(env, "AMX_LABEL_", m.CommonLabels)
	env = appendMap(env, "AMX_GLABEL_", m.GroupLabels)
	env = appendMap(env, "AMX_ANNOTATION_", m.CommonAnnotations)
	for i := range m.Alerts {
		a := &m.Alerts[i]
		key := "AMX_ALERT_" + strconv.Itoa(i+1)
		env = append(env,
			key+"_STATUS="+a.Status,
			key+"_START="+unixString(a.StartsAt),
			key+"_END="+unixString(a.EndsAt),
			key+"_URL="+a.GeneratorURL,
			key+"_FINGERPRINT="+a.Fingerprint,
		)
		env = appendMap(env, key+"_LABEL_", a.Labels)
		env = appendMap(env, key+"_ANNOTATION_", a.Annotations)
	}
	return env
}

func envSize(m *Message) int {
	n := 6 + len(m.CommonLabels) + len(m.GroupLabels) + len(m.CommonAnnotations)
	for i := range m.Alerts {
		n += 5 + len(m.Alerts[i].Labels) + len(m.Alerts[i].Annotations)
	}
	return n
}

func appendMap(env []string, prefix string, m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		env = append(env, prefix+k+"="+m[k])
	}
	return env
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

// routeEnv is the environment of a command a route's script exec'd: the
// notification's classic variables, AMX_ROUTE, the variables of the alert the
// script ran for, and what the script set with env().
func routeEnv(classic []string, route string, a *Alert, extra []string) []string {
	env := make([]string, 0, len(classic)+3+len(a.Labels)+len(a.Annotations)+len(extra))
	env = append(env, classic...)
	env = append(env,
		"AMX_ROUTE="+route,
		"AMX_ALERT_FINGERPRINT="+a.Fingerprint,
		"AMX_ALERT_STATUS="+a.Status,
	)
	env = appendMap(env, "AMX_ALERT_LABEL_", a.Labels)
	env = appendMap(env, "AMX_ALERT_ANNOTATION_", a.Annotations)
	return append(env, extra...)
}
