package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/amx-dev/amx/rules"
)

// Alert statuses, as Alertmanager writes them.
const (
	StatusFiring   = "firing"
	StatusResolved = "resolved"
)

// Message is one Alertmanager webhook notification (payload version 4).
// Fields amx does not know are ignored.
type Message struct {
	Version           string            `json:"version"`
	Receiver          string            `json:"receiver"`
	Status            string            `json:"status"`
	Alerts            []Alert           `json:"alerts"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`

	raw []byte // the body it was decoded from
}

// JSON is the notification as it arrived, or encoded anew when it was not
// decoded from a body.
func (m *Message) JSON() []byte {
	if m.raw == nil {
		m.raw, _ = json.Marshal(m) // a Message always encodes
	}
	return m.raw
}

// Alert is one alert of a notification.
type Alert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// Resolved reports whether the alert has resolved. Alertmanager sends
// resolved alerts inside firing notifications too.
func (a *Alert) Resolved() bool { return a.Status == StatusResolved }

// Decode parses and validates a notification of at most
// rules.DefaultMaxAlerts alerts. Its errors are one line and describe bad
// input: the caller answers them with 400.
//
// The Message's string values share body's memory, which must not change
// afterwards. What keeps a value past the notification (the run history,
// the state store's values) copies it, so as not to hold the whole body.
func Decode(body []byte) (*Message, error) {
	return DecodeMax(body, rules.DefaultMaxAlerts)
}

// DecodeMax is Decode with another limit on the number of alerts.
func DecodeMax(body []byte, maxAlerts int) (*Message, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errors.New("empty request body")
	}
	m := Message{raw: body}
	if err := decodeMessage(body, &m, maxAlerts); err != nil {
		return nil, err
	}
	switch m.Status {
	case StatusFiring, StatusResolved:
	case "":
		return nil, errors.New(`missing "status": want "firing" or "resolved"`)
	default:
		return nil, fmt.Errorf(`unknown "status" %q: want "firing" or "resolved"`, m.Status)
	}
	if len(m.Alerts) == 0 {
		return nil, errors.New(`no "alerts" in the notification`)
	}
	for i := range m.Alerts {
		a := &m.Alerts[i]
		switch a.Status {
		case StatusFiring, StatusResolved:
		case "":
			// Hand-written payloads often leave it out; the alert then
			// shares the notification's status.
			a.Status = m.Status
		default:
			return nil, fmt.Errorf(`alerts[%d]: unknown "status" %q: want "firing" or "resolved"`, i, a.Status)
		}
	}
	return &m, nil
}
