package luaapi

import (
	"slices"

	lua "github.com/yuin/gopher-lua"
)

// Scripts get alert and msg as plain Lua tables, copies a script can change
// freely without reaching Go memory or the next invocation. Building every
// field of every table up front costs more than most rules spend on the two
// or three fields they read: gopher-lua keeps three structures per string
// key. So the tables start as empty proxies that read through to the Go
// values, and the first operation that could tell a proxy from a table — a
// write, pairs or next, rawget or rawset, getmetatable or setmetatable, a
// table.insert/remove/sort — fills the proxy with all its fields and drops
// its metatable: from then on the script holds an ordinary table. A proxy
// lives for one invocation.

// source is what a proxy reads through to: one of alert, msg or strs.
type source struct {
	alert *Alert
	msg   *Notification
	strs  map[string]string
	// kids are the tables already handed out for table-valued fields, so
	// that alert.labels is the same table every time.
	kids [4]*lua.LTable
}

var (
	alertFields = []string{"status", "labels", "annotations", "starts_at", "ends_at", "generator_url", "fingerprint"}
	msgFields   = []string{"receiver", "status", "group_key", "group_labels", "common_labels", "common_annotations",
		"external_url", "truncated_alerts", "alerts"}
)

func (s *state) proxy(src *source) *lua.LTable {
	t := s.newProxy(s.proxyMeta)
	s.proxies[t] = src
	return t
}

// newProxy returns an empty table with metatable meta.
func (s *state) newProxy(meta *lua.LTable) *lua.LTable {
	t := s.L.CreateTable(0, 0)
	t.Metatable = meta
	return t
}

// field is the value of one field of a source, LNil if it has none.
func (s *state) field(src *source, key string) lua.LValue {
	switch {
	case src.alert != nil:
		a := src.alert
		switch key {
		case "status":
			return lua.LString(a.Status)
		case "labels":
			return s.kid(src, 0, a.Labels)
		case "annotations":
			return s.kid(src, 1, a.Annotations)
		case "starts_at":
			return lua.LNumber(a.StartsAt)
		case "ends_at":
			return lua.LNumber(a.EndsAt)
		case "generator_url":
			return lua.LString(a.GeneratorURL)
		case "fingerprint":
			return lua.LString(a.Fingerprint)
		}
	case src.msg != nil:
		n := src.msg
		switch key {
		case "receiver":
			return lua.LString(n.Receiver)
		case "status":
			return lua.LString(n.Status)
		case "group_key":
			return lua.LString(n.GroupKey)
		case "group_labels":
			return s.kid(src, 0, n.GroupLabels)
		case "common_labels":
			return s.kid(src, 1, n.CommonLabels)
		case "common_annotations":
			return s.kid(src, 2, n.CommonAnnotations)
		case "external_url":
			return lua.LString(n.ExternalURL)
		case "truncated_alerts":
			return lua.LNumber(n.TruncatedAlerts)
		case "alerts":
			if src.kids[3] == nil {
				list := s.L.CreateTable(len(n.Alerts), 0)
				for i := range n.Alerts {
					list.RawSetInt(i+1, s.proxy(&source{alert: &n.Alerts[i]}))
				}
				src.kids[3] = list
			}
			return src.kids[3]
		}
	default:
		if v, ok := src.strs[key]; ok {
			return lua.LString(v)
		}
	}
	return lua.LNil
}

// kid returns the proxy for a string map field, the same one every time.
func (s *state) kid(src *source, i int, m map[string]string) *lua.LTable {
	if src.kids[i] == nil {
		src.kids[i] = s.proxy(&source{strs: m})
	}
	return src.kids[i]
}

// source returns what t is a proxy for, or nil.
func (s *state) source(t *lua.LTable) *source {
	if t.Metatable == s.alertMeta && t == s.alertT && s.alertSrc.alert != nil {
		return &s.alertSrc
	}
	if t.Metatable != s.proxyMeta {
		return nil
	}
	switch t {
	case s.labelsT:
		if s.labelsSrc.strs != nil {
			return &s.labelsSrc
		}
	case s.annotationsT:
		if s.annotationsSrc.strs != nil {
			return &s.annotationsSrc
		}
	case s.msgT:
		if s.msgSrc.msg != nil {
			return &s.msgSrc
		}
	case s.alertBack: // it reads the fields alertBack does not hold
		if s.alertSrc.alert != nil {
			return &s.alertSrc
		}
	}
	return s.proxies[t]
}

// fill turns t into the ordinary table it stands for, if it is a proxy.
func (s *state) fill(t *lua.LTable) {
	src := s.source(t)
	if src == nil {
		return
	}
	delete(s.proxies, t)
	t.Metatable = lua.LNil
	var fields []string
	switch {
	case src.alert != nil:
		fields = alertFields
	case src.msg != nil:
		fields = msgFields
	default:
		set := s.prefilledOn(t)
		for k, v := range src.strs {
			if !slices.Contains(set, k) { // the script may have changed it
				t.RawSetString(k, lua.LString(v))
			}
		}
	}
	for _, k := range fields {
		t.RawSetString(k, s.field(src, k))
	}
}

// The alert proxy is the one every rule reads, and alert.labels the field
// it reads most, so it skips the Go call for its three most read fields:
// its __index is a table, alertBack, holding status, labels and
// annotations, which a script cannot reach (getmetatable hides a proxy's
// metatable). The other fields are read by alertBack's own __index,
// proxyIndex. Since alert.labels is the same proxy while untouched and the
// status one of two, alertBack rarely changes from one alert to the next;
// backed mirrors what it holds, to update it without a table lookup.
type backed struct {
	status              string
	labels, annotations *lua.LTable
}

var statusValues = map[string]lua.LValue{"firing": lua.LString("firing"), "resolved": lua.LString("resolved")}

// loadAlert points alertBack at the invocation's alert.
func (s *state) loadAlert() {
	a, b := s.alertSrc.alert, &s.backed
	if a.Status != b.status {
		v, ok := statusValues[a.Status]
		if !ok {
			v = lua.LString(a.Status)
		}
		s.alertBack.RawSetString("status", v)
		b.status = a.Status
	}
	if s.labelsT != b.labels {
		s.alertBack.RawSetString("labels", s.labelsT)
		b.labels = s.labelsT
	}
	if s.annotationsT != b.annotations {
		s.alertBack.RawSetString("annotations", s.annotationsT)
		b.annotations = s.annotationsT
	}
}

// proxyIndex is a proxy's __index: it reads the Go value.
func (s *state) proxyIndex(L *lua.LState) int {
	t := L.CheckTable(1)
	src := s.source(t)
	key, ok := L.Get(2).(lua.LString)
	// A name prefill set is a field of t, or was until the script
	// removed it: either way t itself has the answer, nil.
	if src == nil || !ok || slices.Contains(s.prefilledOn(t), string(key)) {
		L.Push(lua.LNil)
		return 1
	}
	L.Push(s.field(src, string(key)))
	return 1
}

// proxyNewIndex is a proxy's __newindex: a write fills the table first.
func (s *state) proxyNewIndex(L *lua.LState) int {
	t := L.CheckTable(1)
	k, v := L.CheckAny(2), L.CheckAny(3)
	if k == lua.LNil {
		L.RaiseError("table index is nil")
	}
	s.fill(t)
	t.RawSet(k, v)
	return 0
}

// pairs, next and rawget see a proxy as the table it stands for.

func (s *state) pairs(L *lua.LState) int {
	t := L.CheckTable(1)
	s.fill(t)
	L.Push(s.next)
	L.Push(t)
	L.Push(lua.LNil)
	return 3
}

func (s *state) nextKey(L *lua.LState) int {
	t := L.CheckTable(1)
	s.fill(t)
	k, v := t.Next(L.Get(2))
	if k == lua.LNil {
		L.Push(lua.LNil)
		return 1
	}
	L.Push(k)
	L.Push(v)
	return 2
}

func (s *state) rawget(L *lua.LState) int {
	t := L.CheckTable(1)
	s.fill(t)
	L.Push(t.RawGet(L.CheckAny(2)))
	return 1
}

// Reading a label through a proxy is a Go call from the script, and most
// rules read a few labels by name: alert.labels.instance. So before a script
// runs, the names it reads (Script.labelKeys, found by readKeys) are set on
// the alert.labels proxy as ordinary fields, the ones the alert has, and
// the names it has not are removed: a read of a name present costs a table
// lookup. The proxy still reads every other name through to Go, and fills
// itself as before; what was set agrees with what it fills in. prefilled
// mirrors what was set on one proxy, so that from one alert to the next
// only the values that changed are written.
type prefilled struct {
	t    *lua.LTable
	keys []string // a Script's labelKeys or annotationKeys
	vals []string
	has  []bool
}

// prefilledOn returns the names prefill set on t.
func (s *state) prefilledOn(t *lua.LTable) []string {
	for _, p := range []*prefilled{&s.labelsSet, &s.annotationsSet} {
		if p.t == t {
			return p.keys
		}
	}
	return nil
}

// written reports whether a script wrote one of the names set on t: a
// write to a field a table has does not call __newindex, so the proxy does
// not know. The caller then drops the proxy.
func (p *prefilled) written(t *lua.LTable) bool {
	if p.t != t {
		return false
	}
	for i, k := range p.keys {
		v := t.RawGetString(k)
		if s, ok := v.(lua.LString); ok != p.has[i] || (ok && string(s) != p.vals[i]) {
			return true
		}
	}
	return false
}

// prefill sets keys on t, the proxy for m.
func (p *prefilled) prefill(t *lua.LTable, m map[string]string, keys []string) {
	if p.t != t { // a new, empty proxy
		p.t, p.keys = t, nil
	}
	if !sameKeys(p.keys, keys) { // another script's names
		for i, k := range p.keys {
			if p.has[i] {
				t.RawSetString(k, lua.LNil)
			}
		}
		p.keys = keys
		p.vals = append(p.vals[:0], make([]string, len(keys))...)
		p.has = append(p.has[:0], make([]bool, len(keys))...)
	}
	for i, k := range keys {
		v, ok := m[k]
		if ok == p.has[i] && v == p.vals[i] {
			continue
		}
		if ok {
			t.RawSetString(k, lua.LString(v))
		} else {
			t.RawSetString(k, lua.LNil)
		}
		p.has[i], p.vals[i] = ok, v
	}
}

// sameKeys reports whether a and b are the same slice.
func sameKeys(a, b []string) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}
