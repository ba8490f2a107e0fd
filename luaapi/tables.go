package luaapi

import (
	lua "github.com/yuin/gopher-lua"
)

// The tables a script gets are built for each invocation from Go values
// without reflection: they are plain Lua tables, so a script can change them
// freely and nothing reaches Go memory or the next invocation.

func (s *state) alertTable(a *Alert) *lua.LTable {
	t := s.L.CreateTable(0, 7)
	t.RawSetString("status", lua.LString(a.Status))
	t.RawSetString("labels", s.stringMap(a.Labels))
	t.RawSetString("annotations", s.stringMap(a.Annotations))
	t.RawSetString("starts_at", lua.LNumber(a.StartsAt))
	t.RawSetString("ends_at", lua.LNumber(a.EndsAt))
	t.RawSetString("generator_url", lua.LString(a.GeneratorURL))
	t.RawSetString("fingerprint", lua.LString(a.Fingerprint))
	return t
}

// msgTable returns an empty table whose fields msgIndex fills on first
// access: many rules never read msg.
func (s *state) msgTable() *lua.LTable {
	t := s.L.CreateTable(0, 0) // NewTable would preallocate 32 slots of each kind
	t.Metatable = s.msgMeta
	return t
}

// msgIndex is msg's __index. The first access fills every field but alerts;
// msg.alerts is built when asked for, as a group can hold thousands.
func (s *state) msgIndex(L *lua.LState) int {
	t := L.CheckTable(1)
	key := L.CheckString(2)
	if s.cur == nil {
		return 0
	}
	n := s.cur.msg
	if t.RawGetString("status") == lua.LNil {
		t.RawSetString("receiver", lua.LString(n.Receiver))
		t.RawSetString("status", lua.LString(n.Status))
		t.RawSetString("group_key", lua.LString(n.GroupKey))
		t.RawSetString("group_labels", s.stringMap(n.GroupLabels))
		t.RawSetString("common_labels", s.stringMap(n.CommonLabels))
		t.RawSetString("common_annotations", s.stringMap(n.CommonAnnotations))
		t.RawSetString("external_url", lua.LString(n.ExternalURL))
		t.RawSetString("truncated_alerts", lua.LNumber(n.TruncatedAlerts))
	}
	if key == "alerts" {
		list := L.CreateTable(len(n.Alerts), 0)
		for i := range n.Alerts {
			list.RawSetInt(i+1, s.alertTable(&n.Alerts[i]))
		}
		t.RawSetString("alerts", list)
	}
	L.Push(t.RawGetString(key))
	return 1
}

func (s *state) stringMap(m map[string]string) *lua.LTable {
	t := s.L.CreateTable(0, len(m))
	for k, v := range m {
		t.RawSetString(k, lua.LString(v))
	}
	return t
}
