package luaapi

import (
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// Lua patterns, matched the way Lua 5.1's lstrlib does (a test compares
// the two): a backtracking matcher that walks the pattern string itself.
// It differs from Lua 5.1 where 5.1 reads C strings: a NUL byte in a
// pattern is an ordinary character rather than its end, and a '%' that ends
// a gsub replacement is an error rather than a NUL byte. Like Lua 5.2, it
// refuses patterns nested deeper than maxMatchDepth. gopher-lua parses and
// compiles the pattern into a program on every call, which made
// string.match the most expensive line of a typical rule
// (instance:match("^([^:]+)")). string.find, match, gmatch and gsub are
// replaced by the functions below.

const (
	maxCaptures   = 32
	maxMatchDepth = 200 // Lua's MAXCCALLS: deeper patterns are "too complex"
	capUnfinished = -1
	capPosition   = -2
	patSpecials   = "^$*+?.([%-"
)

type capture struct{ init, len int }

// matcher is one match of pat against src. Errors are raised on L.
type matcher struct {
	L        *lua.LState
	src, pat string
	level    int
	depth    int
	steps    int
	capture  [maxCaptures]capture
}

// work counts steps of matching, a subject byte scanned or a call, and
// checks the deadline every 1,024 of them: a pattern can backtrack for
// exponential time, and %b or a repetition scan the whole subject in one
// call, all within one Lua instruction, so the watchdog must be able to
// stop it too.
func (m *matcher) work(steps int) {
	if m.steps += steps; m.steps >= 1024 {
		m.steps = 0
		if ctx := m.L.Context(); ctx != nil && ctx.Err() != nil {
			m.L.RaiseError("%v", ctx.Err())
		}
	}
}

// classEnd returns the index just past the single-character class at p.
func (m *matcher) classEnd(p int) int {
	c := m.pat[p]
	p++
	switch c {
	case '%':
		if p >= len(m.pat) {
			m.L.RaiseError("malformed pattern (ends with '%%')")
		}
		return p + 1
	case '[':
		if p < len(m.pat) && m.pat[p] == '^' {
			p++
		}
		for { // look for a ']'; the first character is never one
			if p >= len(m.pat) {
				m.L.RaiseError("malformed pattern (missing ']')")
			}
			c := m.pat[p]
			p++
			if c == '%' && p < len(m.pat) {
				p++ // skip escapes such as %]
			}
			if p < len(m.pat) && m.pat[p] == ']' {
				return p + 1
			}
		}
	}
	return p
}

// matchClass reports whether c is in the class %cl.
func matchClass(c, cl byte) bool {
	var res bool
	switch cl | 0x20 { // lower case
	case 'a':
		res = isAlpha(c)
	case 'c':
		res = c < 0x20 || c == 0x7f
	case 'd':
		res = '0' <= c && c <= '9'
	case 'l':
		res = 'a' <= c && c <= 'z'
	case 'p':
		res = isPunct(c)
	case 's':
		res = c == ' ' || '\t' <= c && c <= '\r'
	case 'u':
		res = 'A' <= c && c <= 'Z'
	case 'w':
		res = isAlpha(c) || '0' <= c && c <= '9'
	case 'x':
		res = '0' <= c && c <= '9' || 'a' <= c|0x20 && c|0x20 <= 'f'
	case 'z':
		res = c == 0
	default:
		return cl == c
	}
	if 'A' <= cl && cl <= 'Z' {
		return !res
	}
	return res
}

func isAlpha(c byte) bool { return 'a' <= c|0x20 && c|0x20 <= 'z' }

func isPunct(c byte) bool {
	return '!' <= c && c <= '~' && !isAlpha(c) && !('0' <= c && c <= '9')
}

// matchBracket reports whether c is in the set that starts at p ('[') and
// ends at ec (']').
func (m *matcher) matchBracket(c byte, p, ec int) bool {
	want := true
	if m.pat[p+1] == '^' {
		want = false
		p++
	}
	for p++; p < ec; p++ {
		switch {
		case m.pat[p] == '%':
			p++
			if matchClass(c, m.pat[p]) {
				return want
			}
		case m.pat[p+1] == '-' && p+2 < ec:
			p += 2
			if m.pat[p-2] <= c && c <= m.pat[p] {
				return want
			}
		case m.pat[p] == c:
			return want
		}
	}
	return !want
}

// single reports whether src[s] matches the class from p to ep.
func (m *matcher) single(s, p, ep int) bool {
	if s >= len(m.src) {
		return false
	}
	c := m.src[s]
	switch m.pat[p] {
	case '.':
		return true
	case '%':
		return matchClass(c, m.pat[p+1])
	case '[':
		return m.matchBracket(c, p, ep-1)
	}
	return m.pat[p] == c
}

// match matches the pattern from p against the subject from s and returns
// where the match ends, or -1.
func (m *matcher) match(s, p int) int {
	if m.depth++; m.depth > maxMatchDepth {
		m.L.RaiseError("pattern too complex")
	}
	m.work(1)
	r := m.doMatch(s, p)
	m.depth--
	return r
}

func (m *matcher) doMatch(s, p int) int {
	for p < len(m.pat) {
		switch m.pat[p] {
		case '(':
			if p+1 < len(m.pat) && m.pat[p+1] == ')' {
				return m.startCapture(s, p+2, capPosition)
			}
			return m.startCapture(s, p+1, capUnfinished)
		case ')':
			return m.endCapture(s, p+1)
		case '$':
			if p+1 == len(m.pat) {
				if s == len(m.src) {
					return s
				}
				return -1
			}
		case '%':
			if p+1 >= len(m.pat) {
				break // classEnd reports it
			}
			switch c := m.pat[p+1]; {
			case c == 'b':
				if s = m.matchBalance(s, p+2); s == -1 {
					return -1
				}
				p += 4
				continue
			case c == 'f':
				p += 2
				if p >= len(m.pat) || m.pat[p] != '[' {
					m.L.RaiseError("missing '[' after '%%f' in pattern")
				}
				ep := m.classEnd(p)
				var prev, cur byte
				if s > 0 {
					prev = m.src[s-1]
				}
				if s < len(m.src) {
					cur = m.src[s]
				}
				if m.matchBracket(prev, p, ep-1) || !m.matchBracket(cur, p, ep-1) {
					return -1
				}
				p = ep
				continue
			case '0' <= c && c <= '9':
				if s = m.matchCapture(s, c); s == -1 {
					return -1
				}
				p += 2
				continue
			}
		}
		ep := m.classEnd(p)
		ok := m.single(s, p, ep)
		if ep < len(m.pat) {
			switch m.pat[ep] {
			case '?':
				if ok {
					if r := m.match(s+1, ep+1); r != -1 {
						return r
					}
				}
				p = ep + 1
				continue
			case '*':
				return m.maxExpand(s, p, ep)
			case '+':
				if !ok {
					return -1
				}
				return m.maxExpand(s+1, p, ep)
			case '-':
				return m.minExpand(s, p, ep)
			}
		}
		if !ok {
			return -1
		}
		s++
		p = ep
	}
	return s
}

func (m *matcher) maxExpand(s, p, ep int) int {
	i := 0
	for m.single(s+i, p, ep) {
		i++
	}
	m.work(i)
	for ; i >= 0; i-- { // try with as many repetitions as possible first
		if r := m.match(s+i, ep+1); r != -1 {
			return r
		}
	}
	return -1
}

func (m *matcher) minExpand(s, p, ep int) int {
	for {
		if r := m.match(s, ep+1); r != -1 {
			return r
		}
		if !m.single(s, p, ep) {
			return -1
		}
		s++
	}
}

func (m *matcher) startCapture(s, p, what int) int {
	if m.level >= maxCaptures {
		m.L.RaiseError("too many captures")
	}
	m.capture[m.level] = capture{init: s, len: what}
	m.level++
	r := m.match(s, p)
	if r == -1 {
		m.level--
	}
	return r
}

func (m *matcher) endCapture(s, p int) int {
	l := -1
	for i := m.level - 1; i >= 0; i-- {
		if m.capture[i].len == capUnfinished {
			l = i
			break
		}
	}
	if l < 0 {
		m.L.RaiseError("invalid pattern capture")
	}
	m.capture[l].len = s - m.capture[l].init
	r := m.match(s, p)
	if r == -1 {
		m.capture[l].len = capUnfinished
	}
	return r
}

// matchBalance matches %bxy, with x and y at p.
func (m *matcher) matchBalance(s, p int) int {
	if p+1 >= len(m.pat) {
		m.L.RaiseError("unbalanced pattern")
	}
	if s >= len(m.src) || m.src[s] != m.pat[p] {
		return -1
	}
	open, close, depth := m.pat[p], m.pat[p+1], 1
	for i := s + 1; i < len(m.src); i++ {
		switch m.src[i] {
		case close:
			if depth--; depth == 0 {
				m.work(i - s)
				return i + 1
			}
		case open:
			depth++
		}
	}
	m.work(len(m.src) - s)
	return -1
}

// matchCapture matches a back reference %1 to %9.
func (m *matcher) matchCapture(s int, c byte) int {
	i := int(c - '1')
	if i < 0 || i >= m.level || m.capture[i].len == capUnfinished {
		m.L.RaiseError("invalid capture index %%%c", c)
	}
	if m.capture[i].len == capPosition {
		return -1 // as in Lua, a position capture matches nothing
	}
	capt := m.src[m.capture[i].init : m.capture[i].init+m.capture[i].len]
	m.work(len(capt))
	if strings.HasPrefix(m.src[s:], capt) {
		return s + len(capt)
	}
	return -1
}

// get returns capture i of the match from s to e; with no captures,
// capture 0 is the whole match.
func (m *matcher) get(i, s, e int) lua.LValue {
	if i >= m.level {
		if i != 0 {
			m.L.RaiseError("invalid capture index %%%d", i+1)
		}
		return lua.LString(m.src[s:e])
	}
	c := m.capture[i]
	switch c.len {
	case capUnfinished:
		m.L.RaiseError("unfinished capture")
	case capPosition:
		return lua.LNumber(c.init + 1)
	}
	return lua.LString(m.src[c.init : c.init+c.len])
}

// push pushes the captures of the match from s to e and returns how many.
func (m *matcher) push(s, e int) int {
	n := max(m.level, 1)
	for i := range n {
		m.L.Push(m.get(i, s, e))
	}
	return n
}

// start returns where the search begins for an init argument, as
// string.find and string.match take it.
func start(L *lua.LState, n, size int) int {
	init := L.OptInt(n, 1)
	if init < 0 {
		init += size + 1
	}
	return min(max(init-1, 0), size)
}

func strFind(L *lua.LState) int  { return findAux(L, true) }
func strMatch(L *lua.LState) int { return findAux(L, false) }

func findAux(L *lua.LState, find bool) int {
	src, pat := L.CheckString(1), L.CheckString(2)
	init := start(L, 3, len(src))
	if find && (L.ToBool(4) || !strings.ContainsAny(pat, patSpecials)) {
		if i := strings.Index(src[init:], pat); i >= 0 {
			L.Push(lua.LNumber(init + i + 1))
			L.Push(lua.LNumber(init + i + len(pat)))
			return 2
		}
		L.Push(lua.LNil)
		return 1
	}
	m := &matcher{L: L, src: src, pat: pat}
	p, anchor := 0, strings.HasPrefix(pat, "^")
	if anchor {
		p = 1
	}
	for s := init; s <= len(src); s++ {
		m.level = 0
		if e := m.match(s, p); e != -1 {
			if !find {
				return m.push(s, e)
			}
			L.Push(lua.LNumber(s + 1))
			L.Push(lua.LNumber(e))
			if m.level == 0 {
				return 2
			}
			return 2 + m.push(s, e)
		}
		if anchor {
			break
		}
	}
	L.Push(lua.LNil)
	return 1
}

func strGmatch(L *lua.LState) int {
	src, pat := L.CheckString(1), L.CheckString(2)
	pos := 0
	L.Push(L.NewFunction(func(L *lua.LState) int {
		m := &matcher{L: L, src: src, pat: pat}
		for s := pos; s <= len(src); s++ {
			m.level = 0
			if e := m.match(s, 0); e != -1 {
				pos = e
				if e == s {
					pos++ // an empty match: move on
				}
				return m.push(s, e)
			}
		}
		pos = len(src) + 1
		return 0
	}))
	return 1
}

func strGsub(L *lua.LState) int {
	src, pat := L.CheckString(1), L.CheckString(2)
	repl := L.Get(3)
	switch repl.Type() {
	case lua.LTNumber, lua.LTString, lua.LTTable, lua.LTFunction:
	default:
		L.ArgError(3, "string/function/table expected")
	}
	maxN := L.OptInt(4, len(src)+1)
	m := &matcher{L: L, src: src, pat: pat}
	p, anchor := 0, strings.HasPrefix(pat, "^")
	if anchor {
		p = 1
	}
	var b strings.Builder
	s, n := 0, 0
loop:
	for n < maxN {
		m.level = 0
		e := m.match(s, p)
		if e != -1 {
			n++
			m.replace(&b, repl, s, e)
			if b.Len() > maxRep {
				L.RaiseError("string.gsub: result longer than %d bytes", maxRep)
			}
		}
		switch {
		case e != -1 && e > s:
			s = e
		case s < len(src):
			b.WriteByte(src[s])
			s++
		default:
			break loop // the end of the subject
		}
		if anchor {
			break
		}
	}
	b.WriteString(src[min(s, len(src)):])
	L.Push(lua.LString(b.String()))
	L.Push(lua.LNumber(n))
	return 2
}

// replace writes the replacement for the match from s to e.
func (m *matcher) replace(b *strings.Builder, repl lua.LValue, s, e int) {
	L := m.L
	var v lua.LValue
	switch r := repl.(type) {
	case lua.LString, lua.LNumber:
		// The text between escapes is written a run at a time.
		str := r.String()
		for {
			i := strings.IndexByte(str, '%')
			if i < 0 {
				b.WriteString(str)
				return
			}
			b.WriteString(str[:i])
			if i+1 == len(str) {
				// Lua 5.1 would append a NUL byte.
				L.RaiseError("invalid use of '%%' in replacement string")
			}
			switch d := str[i+1]; {
			case d == '0':
				b.WriteString(m.src[s:e])
			case '1' <= d && d <= '9':
				b.WriteString(lua.LVAsString(m.get(int(d-'1'), s, e)))
			default:
				b.WriteByte(d)
			}
			str = str[i+2:]
		}
	case *lua.LTable:
		v = L.GetTable(r, m.get(0, s, e))
	case *lua.LFunction:
		L.Push(r)
		n := m.push(s, e)
		L.Call(n, 1)
		v = L.Get(-1)
		L.Pop(1)
	}
	switch v := v.(type) {
	case lua.LString, lua.LNumber:
		b.WriteString(v.String())
	default:
		if lua.LVAsBool(v) {
			L.RaiseError("invalid replacement value (a %s)", v.Type())
		}
		b.WriteString(m.src[s:e]) // false or nil: keep the original
	}
}
