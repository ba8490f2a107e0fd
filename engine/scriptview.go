package engine

import (
	"sync"

	"github.com/amx-dev/amx/luaapi"
)

// views recycles the notifications scripts see, small ones only: one per
// notification with a route was a tenth of what a route cost per request.
var views = sync.Pool{New: func() any { return new(luaapi.Notification) }}

// maxPooledAlerts bounds the views kept: a large group's would hold memory
// for nothing.
const maxPooledAlerts = 64

// scriptView is the notification as scripts see it. Maps are shared, not
// copied: luaapi copies them into Lua tables and never writes them. Hand
// it back with releaseView once no script runs on it.
func scriptView(m *Message) *luaapi.Notification {
	n := views.Get().(*luaapi.Notification)
	*n = luaapi.Notification{
		Receiver:          m.Receiver,
		Status:            m.Status,
		GroupKey:          m.GroupKey,
		GroupLabels:       m.GroupLabels,
		CommonLabels:      m.CommonLabels,
		CommonAnnotations: m.CommonAnnotations,
		ExternalURL:       m.ExternalURL,
		TruncatedAlerts:   m.TruncatedAlerts,
		Alerts:            n.Alerts[:0],
	}
	for i := range m.Alerts {
		a := &m.Alerts[i]
		n.Alerts = append(n.Alerts, luaapi.Alert{
			Status:       a.Status,
			Labels:       a.Labels,
			Annotations:  a.Annotations,
			StartsAt:     unixSeconds(a.StartsAt),
			EndsAt:       unixSeconds(a.EndsAt),
			GeneratorURL: a.GeneratorURL,
			Fingerprint:  a.Fingerprint,
		})
	}
	return n
}

// releaseView recycles a view, without the notification's data.
func releaseView(n *luaapi.Notification) {
	if cap(n.Alerts) > maxPooledAlerts {
		return
	}
	clear(n.Alerts)
	*n = luaapi.Notification{Alerts: n.Alerts[:0]}
	views.Put(n)
}
