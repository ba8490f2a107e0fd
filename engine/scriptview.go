package engine

import "github.com/amx-dev/amx/luaapi"

// scriptView is the notification as scripts see it. Maps are shared, not
// copied: luaapi copies them into Lua tables and never writes them.
func scriptView(m *Message) *luaapi.Notification {
	n := &luaapi.Notification{
		Receiver:          m.Receiver,
		Status:            m.Status,
		GroupKey:          m.GroupKey,
		GroupLabels:       m.GroupLabels,
		CommonLabels:      m.CommonLabels,
		CommonAnnotations: m.CommonAnnotations,
		ExternalURL:       m.ExternalURL,
		TruncatedAlerts:   m.TruncatedAlerts,
		Alerts:            make([]luaapi.Alert, len(m.Alerts)),
	}
	for i := range m.Alerts {
		a := &m.Alerts[i]
		n.Alerts[i] = luaapi.Alert{
			Status:       a.Status,
			Labels:       a.Labels,
			Annotations:  a.Annotations,
			StartsAt:     unixSeconds(a.StartsAt),
			EndsAt:       unixSeconds(a.EndsAt),
			GeneratorURL: a.GeneratorURL,
			Fingerprint:  a.Fingerprint,
		}
	}
	return n
}
