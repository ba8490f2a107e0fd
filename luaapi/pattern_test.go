package luaapi

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
)

// TestPatternsMatchLua51 runs the same Lua program, thousands of calls of
// string.find, match, gmatch and gsub, in the sandbox and in the real Lua
// 5.1 interpreter, and compares every result. Errors are compared as
// "error"; the sandbox must never fail with a Go runtime error.
func TestPatternsMatchLua51(t *testing.T) {
	matchesLua51(t, patternCases())
}

// lua51 is the path of the real Lua 5.1 interpreter, which CI installs;
// without it the test skips locally.
func lua51(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("lua5.1")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("lua5.1 is required under CI (apt-get install lua5.1)")
		}
		t.Skip("lua5.1 is not installed")
	}
	return path
}

// runLua51 runs prog in the real Lua 5.1 and returns its lines of output.
func runLua51(t *testing.T, prog string) []string {
	t.Helper()
	cmd := exec.Command(lua51(t), "-")
	cmd.Stdin = strings.NewReader(prog)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("lua5.1: %v", err)
	}
	return strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
}

// runSandbox runs prog, compiled as rules are, on a new sandboxed state and
// returns the lines it passed to emit.
func runSandbox(t *testing.T, prog string) []string {
	t.Helper()
	st := newState()
	defer st.L.Close()
	var got []string
	st.L.SetGlobal("emit", st.L.NewFunction(func(L *lua.LState) int {
		got = append(got, L.CheckString(1))
		return 0
	}))
	s, err := Compile("program.lua", prog)
	if err != nil {
		t.Fatal(err)
	}
	st.L.Push(st.L.NewFunctionFromProto(s.proto))
	if err := st.L.PCall(0, 0, nil); err != nil {
		t.Fatal(err)
	}
	return got
}

// matchesLua51 runs the cases (calls of case(), see patternProgram) in the
// sandbox and in the real Lua 5.1 and compares every result. Errors are
// compared as "error"; the sandbox must never fail with a Go runtime
// error.
func matchesLua51(t *testing.T, cases []string) {
	t.Helper()
	prog := patternProgram(cases)
	want, got := runLua51(t, prog), runSandbox(t, prog)
	if len(got) != len(cases) || len(want) != len(cases) {
		t.Fatalf("%d cases, %d results here, %d from lua5.1", len(cases), len(got), len(want))
	}
	bad := 0
	for i, c := range cases {
		g, _, _ := strings.Cut(got[i], "\t")
		w, _, _ := strings.Cut(want[i], "\t")
		if strings.Contains(got[i], "runtime error") {
			t.Errorf("%s: Go runtime error: %s", describe(c), got[i])
		}
		if g != w {
			t.Errorf("%s\n got %s\nwant %s", describe(c), got[i], want[i])
			if bad++; bad == 20 {
				t.Fatal("too many differences")
			}
		}
	}
}

// patternCases returns calls as Lua source: hand-picked subjects and
// patterns, then random ones built from pattern pieces (seeded, so every
// run checks the same cases).
func patternCases() []string {
	var cases []string
	subjects := []string{"", "app3:8080", "db1.example.com:9100", "  hello world  ", "a,b,,c", "THE (quick) fox",
		"key=value; k2=v2", "[[nested]] (a(b)c)", "x", "aaa", "f(a,b)", "100%", "tab\there", "/var/lib/docker"}
	patterns := []string{"", "^([^:]+)", "^(.-):(%d+)$", "(%w+)=(%w+)", "%s*(.-)%s*$", "[^,]*", ",", "%a+", "%u+", "()",
		"(%a)(%a)", "%b()", "%f[%w]%w+", "^$", "a*", "a-", "a?", "a+", "x*$", ".", "[%]]", "[a-c]+", "[^%s]+", "%%",
		"(h)(e)(l)", "%d%d%d", "(a)%1", "(.)%1", "[%w_]+", "^/var/(.*)$", "o", "%p", "%x+", "%c", "%l+", ".-$", "^", "$",
		"[]]", "[^]]+", "%S+", "(()a)", "[a-]", "[-a]+", "^%s*$", "(k(%d))", "[", "%", "(", ")", "%1", "%b", "%f", "(()"}
	for _, s := range subjects {
		for _, p := range patterns {
			cases = append(cases,
				call("find", s, p), call("find", s, p, 3), call("find", s, p, -4), call("find", s, p, 1, true),
				call("match", s, p), call("match", s, p, 20), call("gmatch", s, p),
				call("gsub", s, p, "<%0>"), call("gsub", s, p, "%1", 2))
		}
	}
	for _, s := range subjects[:6] {
		cases = append(cases,
			call("gsub", s, "(%w)(%w*)", raw(`function(a, b) return b .. a end`)),
			call("gsub", s, "%w+", raw(`function() return nil end`)),
			call("gsub", s, "%w+", raw(`function() return {} end`)),
			call("gsub", s, "%w", raw(`{a = "A", p = 1, e = false, x = true}`)),
			call("gsub", s, "(o)()", "[%2]"),
			call("gsub", s, "", "-"),
			call("gsub", s, "%w+", 7))
	}

	rng := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"a", "b", ":", ".", "%a", "%d", "%s", "%w", "%p", "%x", "%u", "%A", "%S", "%.", "(", ")", "()",
		"[ab]", "[^a]", "[%d:]", "[a-c]", "*", "+", "-", "?", "^", "$", "%b()", "%f[%w]", "%f[%W]", "%1", "%2", "%%", "]", "["}
	const letters = "ab:1 ()[]%.-xA"
	for range 4000 {
		var s, p strings.Builder
		for range rng.IntN(11) {
			s.WriteByte(letters[rng.IntN(len(letters))])
		}
		for range rng.IntN(7) {
			p.WriteString(pieces[rng.IntN(len(pieces))])
		}
		switch rng.IntN(5) {
		case 0:
			cases = append(cases, call("find", s.String(), p.String(), rng.IntN(17)-5))
		case 1:
			cases = append(cases, call("match", s.String(), p.String()))
		case 2:
			cases = append(cases, call("gmatch", s.String(), p.String()))
		case 3:
			cases = append(cases, call("gsub", s.String(), p.String(), []string{"<%0>", "%1", "%2%1", "x"}[rng.IntN(4)]))
		default:
			cases = append(cases, call("find", s.String(), p.String()))
		}
	}
	return cases
}

// describe shows a case's string arguments readably.
func describe(c string) string {
	return regexp.MustCompile(`"(\\\d+)*"`).ReplaceAllStringFunc(c, func(q string) string {
		var b []byte
		for _, d := range strings.Split(strings.Trim(q, `"`), `\`)[1:] {
			n, _ := strconv.Atoi(d)
			b = append(b, byte(n))
		}
		return strconv.Quote(string(b))
	})
}

// raw is Lua source used as an argument as it is.
type raw string

// call renders string.<fn>(args...) as a call of the test program's case().
func call(fn string, args ...any) string {
	parts := []string{quote(fn)}
	for _, a := range args {
		switch a := a.(type) {
		case string:
			parts = append(parts, quote(a))
		case int:
			parts = append(parts, fmt.Sprint(a))
		case bool:
			parts = append(parts, fmt.Sprint(a))
		case raw:
			parts = append(parts, string(a))
		}
	}
	return "case(" + strings.Join(parts, ", ") + ")"
}

// quote writes s as a Lua string literal that both interpreters read the
// same way: every byte as a decimal escape.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, "\\%d", s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// patternProgram is the program both interpreters run. It shows results
// without using the functions under test.
func patternProgram(cases []string) string {
	return `
emit = emit or print
local function hex(s)
  local t = {}
  for i = 1, #s do t[i] = string.format("%02x", string.byte(s, i)) end
  return table.concat(t)
end
local function pack(...) return {n = select("#", ...), ...} end
local function show(r, from)
  if r.n < from then return "none" end
  local out = {}
  for i = from, r.n do
    local v = r[i]
    out[#out + 1] = type(v) == "string" and "s:" .. hex(v) or type(v) .. ":" .. tostring(v)
  end
  return table.concat(out, " ")
end
local function drain(f, s, c)
  local parts = {}
  for _ = 1, 100 do
    local r = pack(f(s, c))
    if r.n == 0 or r[1] == nil then return table.concat(parts, " | ") end
    c = r[1]
    parts[#parts + 1] = show(r, 1)
  end
  error("gmatch did not end")
end
function case(fn, ...)
  local r = pack(pcall(string[fn], ...))
  if r[1] and fn == "gmatch" then r = pack(pcall(drain, r[2], r[3], r[4])) end
  if not r[1] then emit("error\t" .. tostring(r[2])) return end
  emit(show(r, 2))
end
` + strings.Join(cases, "\n") + "\n"
}

// FuzzPatterns: whatever the subject, pattern and replacement, the pattern
// functions return or raise a Lua error; they never fail in Go. Run with
// go test -fuzz FuzzPatterns ./luaapi; the seeds run with every go test.
func FuzzPatterns(f *testing.F) {
	for _, seed := range [][3]string{
		{"app3:8080", "^([^:]+)", "%1"}, {"a(b)c", "%b()", "<%0>"}, {"THE (quick) fox", "%f[%a]%a+", "%%"},
		{"aaa", "(a)%1", "%2"}, {"x", "[%", "%"}, {"\x00a\x00", "%z+()", "%0"}, {"", "(()", ""},
		{"((((((((", "%b()", "%0"}, {"(()(", "%b((", ""}, {"aaaa", ".-b", ""},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	st := newState()
	f.Cleanup(func() { st.L.Close() })
	f.Fuzz(func(t *testing.T, s, p, repl string) {
		L := st.L
		for _, fn := range []lua.LGFunction{strFind, strMatch, strGsub, strGmatch} {
			L.Push(L.NewFunction(fn))
			L.Push(lua.LString(s))
			L.Push(lua.LString(p))
			L.Push(lua.LString(repl))
			err := L.PCall(3, lua.MultRet, nil)
			if err != nil && strings.Contains(err.Error(), "runtime error") {
				t.Fatalf("(%q, %q, %q): %v", s, p, repl, err)
			}
			if it, ok := L.Get(-1).(*lua.LFunction); ok && err == nil { // gmatch
				for range len(s) + 2 {
					L.Push(it)
					if err := L.PCall(0, 1, nil); err != nil {
						if strings.Contains(err.Error(), "runtime error") {
							t.Fatalf("gmatch(%q, %q): %v", s, p, err)
						}
						break
					}
					if L.Get(-1) == lua.LNil {
						break
					}
					L.Pop(1)
				}
			}
			L.SetTop(0)
		}
	})
}
