package ruletool

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/amx-dev/amx/engine"
	"github.com/amx-dev/amx/rules"
)

// inlineStart is when inline alerts start unless they say: a fixed time, so
// that tests are reproducible.
var inlineStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// notification reads a test's recorded payload, or builds its inline one as
// Alertmanager would send it.
func notification(t *rules.Test) (*engine.Message, error) {
	if t.Inline == nil {
		body, err := os.ReadFile(t.Payload)
		if err != nil {
			return nil, fmt.Errorf("payload: %w", err)
		}
		m, err := engine.Decode(body)
		if err != nil {
			return nil, fmt.Errorf("payload %s: %w", t.Payload, err)
		}
		return m, nil
	}
	in := t.Inline
	m := &engine.Message{
		Version:           "4",
		Receiver:          in.Receiver,
		Status:            in.Status,
		GroupKey:          in.GroupKey,
		GroupLabels:       orEmpty(in.GroupLabels),
		CommonAnnotations: orEmpty(in.CommonAnnotations),
		ExternalURL:       in.ExternalURL,
		TruncatedAlerts:   in.TruncatedAlerts,
	}
	firing := false
	for i, a := range in.Alerts {
		alert := engine.Alert{
			Status:       a.Status,
			Labels:       orEmpty(a.Labels),
			Annotations:  orEmpty(a.Annotations),
			GeneratorURL: a.GeneratorURL,
			Fingerprint:  a.Fingerprint,
			StartsAt:     inlineStart,
		}
		if alert.Status == "" {
			alert.Status = engine.StatusFiring
		}
		if alert.Fingerprint == "" {
			alert.Fingerprint = Fingerprint(alert.Labels)
		}
		if alert.Status == engine.StatusResolved {
			alert.EndsAt = inlineStart.Add(time.Hour)
		}
		for _, ts := range []struct {
			text string
			out  *time.Time
		}{{a.StartsAt, &alert.StartsAt}, {a.EndsAt, &alert.EndsAt}} {
			if ts.text == "" {
				continue
			}
			v, err := time.Parse(time.RFC3339, ts.text)
			if err != nil {
				return nil, fmt.Errorf("alerts[%d]: %w", i, err)
			}
			*ts.out = v
		}
		firing = firing || alert.Status == engine.StatusFiring
		m.Alerts = append(m.Alerts, alert)
	}
	if m.Status == "" {
		m.Status = engine.StatusResolved
		if firing {
			m.Status = engine.StatusFiring
		}
	}
	m.CommonLabels = in.CommonLabels
	if m.CommonLabels == nil {
		m.CommonLabels = common(m.Alerts)
	}
	return m, nil
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// common is the labels every alert has with the same value, as Alertmanager
// computes commonLabels.
func common(alerts []engine.Alert) map[string]string {
	c := maps.Clone(alerts[0].Labels)
	for _, a := range alerts[1:] {
		for k, v := range c {
			if a.Labels[k] != v {
				delete(c, k)
			}
		}
	}
	return c
}

// Fingerprint is Alertmanager's fingerprint of a label set (Prometheus'
// model.LabelSet.Fingerprint): FNV-1a over the sorted names and values, each
// followed by a 0xff byte, as 16 hex digits.
func Fingerprint(labels map[string]string) string {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
		sep    = 0xff
	)
	h := uint64(offset)
	add := func(s string) {
		for i := 0; i < len(s); i++ {
			h ^= uint64(s[i])
			h *= prime
		}
		h ^= sep
		h *= prime
	}
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		add(k)
		add(labels[k])
	}
	return fmt.Sprintf("%016x", h)
}
