package luaapi

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// formatCases are string.format calls as Lua source: hand-picked, then
// random specs over numbers and strings (seeded: every run checks the
// same cases).
func formatCases() []string {
	cases := []string{
		call("format", "%5.2f|%-3s|%d%%", raw("3.14159"), "a", raw("7")),
		call("format", "%q", "a\"b\\c\nd\re\x00f"),
		call("format", "%s", strings.Repeat("x", 150)),
		call("format", "%5s|%-5s|%.2s", "h\u00e9", "h\u00e9", "\u00e9t\u00e9"),
		call("format", "%c%c%c", raw("76"), raw("117"), raw("97")),
		call("format", "%d %i %u %o %x %X", raw("-3.7"), raw("42"), raw("-1"), raw("8"), raw("255"), raw("-255")),
		call("format", "%g %g %g %G", raw("1234567"), raw("0.0001"), raw("1e20"), raw("1e-10")),
		call("format", "%e %E %.0e %#.0f", raw("12345.678"), raw("0.5"), raw("5"), raw("3")),
		call("format", "%f %f %f", raw("1/0"), raw("-1/0"), raw("0/0")),
		call("format", "%5.1f|%-8.3e|%+d|% d|%05d|%#x|%#o", raw("2.25"), raw("1"), raw("5"), raw("5"), raw("-42"), raw("255"), raw("8")),
		call("format", "%d", "12"),
		call("format", "%s %s", raw("1"), raw("2.5")),
		call("format", "%[1]s", "x"),
		call("format", "%100d", raw("1")),
		call("format", "%.100f", raw("1")),
		call("format", "%------5d", raw("1")),
		call("format", "%", "x"),
		call("format", "%y", "x"),
		call("format", "%d"),
		call("format", "%s", raw("{}")),
		call("format", "%d", "x"),
		call("format", "no conversions"),
	}
	r := rand.New(rand.NewPCG(5, 1))
	flags := []string{"", "-", "+", " ", "#", "0", "-0", "+ ", "#0"}
	numbers := []string{"0", "1", "-1", "3.75", "-2.5", "1e15", "123456789", "0.000123", "255", "2^31", "-2^40", "1/0", "-1/0", "0/0", "2^70"}
	strs := []string{"", "a", "abc", "hello world", "tab\there"}
	for range 3000 {
		spec := "%" + flags[r.IntN(len(flags))]
		if r.IntN(2) == 0 {
			spec += strings.Repeat("1", r.IntN(2)) + string(rune('0'+r.IntN(10)))
		}
		if r.IntN(2) == 0 {
			spec += "." + string(rune('0'+r.IntN(10)))
		}
		conv := "cdiouxXeEfgGqs"[r.IntN(14)]
		spec += string(conv)
		switch conv {
		case 'q', 's':
			cases = append(cases, call("format", "["+spec+"]", strs[r.IntN(len(strs))]))
		case 'c':
			cases = append(cases, call("format", "["+spec+"]", raw("65")))
		default:
			cases = append(cases, call("format", "["+spec+"]", raw(numbers[r.IntN(len(numbers))])))
		}
	}
	return cases
}

// TestFormatMatchesLua51 runs string.format calls in the sandbox and in the
// real Lua 5.1 interpreter and compares every result; errors compare as
// "error".
func TestFormatMatchesLua51(t *testing.T) {
	matchesLua51(t, formatCases())
}

// TestFormatBounds: the result's size is known before it is built. An
// argument reused through Go's %[n] ran 27 s and took 3.66 GB under a 100
// ms deadline and a 128 MiB limit.
func TestFormatBounds(t *testing.T) {
	for _, tc := range []struct{ src, err string }{
		{`return string.format(string.rep("%[1]s", 1024), string.rep("x", 2^20))`, "invalid option '%[' to 'format'"},
		{`return string.format(string.rep("%s", 20), unpack((function() local t = {} for i = 1, 20 do t[i] = ("x"):rep(2^20) end return t end)()))`,
			"string.format: result longer than 16777216 bytes"},
	} {
		s, err := Compile("format.lua", tc.src)
		if err != nil {
			t.Fatal(err)
		}
		_, err = NewVM(10*time.Second, 128<<20, nil).Run(context.Background(), s, "r", notification(), 0)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: err = %v, want %q", tc.src, err, tc.err)
		}
	}
}

// TestTimeoutInScan: %b and repetitions scan the subject within one call
// of the matcher; the deadline counts the bytes scanned, not the calls
// (string.rep("(", 2^24-1):find("%b()") ran 12 s under 100 ms).
func TestTimeoutInScan(t *testing.T) {
	for _, src := range []string{
		`return string.rep("(", 2^24 - 1):find("%b()")`,
		`return string.rep("a", 2^24 - 1):find(".-b")`,
		`return string.rep("a", 2^24 - 1):find("a*b")`,
		`local s = string.rep("a", 2^23) return (s .. s):find("(" .. s .. ")%1b")`,
	} {
		s, err := Compile("scan.lua", src)
		if err != nil {
			t.Fatal(err)
		}
		_, err = NewVM(100*time.Millisecond, 0, nil).Run(context.Background(), s, "r", notification(), 0)
		if lerr, ok := errors.AsType[*Error](err); !ok || lerr.Kind != KindTimeout {
			t.Errorf("%s: err = %v, want a timeout", src, err)
		}
	}
}

// TestConcatMatchesLua51: `..`, now a host function that bounds its result
// (boundConcat), gives what Lua 5.1 gives: metamethods from the right,
// errors for what cannot be joined. (Numbers are written as gopher-lua
// writes them, which differs from Lua 5.1 past 14 digits, as tostring
// does.)
func TestConcatMatchesLua51(t *testing.T) {
	prog := `
emit = emit or print
local log = {}
local mt = {__concat = function(a, b)
  local function name(x) return type(x) == "table" and x.name or tostring(x) end
  log[#log + 1] = name(a) .. "+" .. name(b)
  return "<" .. name(a) .. name(b) .. ">"
end}
local A, B = setmetatable({name = "A"}, mt), setmetatable({name = "B"}, mt)
local function try(f) local ok, r = pcall(f) emit(ok and ("ok " .. tostring(r)) or "error") end
try(function() return "a" .. "b" .. "c" end)
try(function() return 1 .. 2 end)
try(function() return 1.5 .. "|" .. -0.25 .. "|" .. 1e100 end)
try(function() local x = 10 return x .. "" .. x * 2 end)
try(function() return "a" .. A .. "b" .. "c" end)
try(function() return A .. B end)
try(function() return "x" .. A .. B .. "y" end)
try(function() return (("a" .. "b") .. "c") .. ("d" .. "e") end)
try(function() return "a" .. nil end)
try(function() return "a" .. {} .. "b" end)
try(function() return true .. "a" end)
try(function() local t = {name = "t"} return t .. A end)
emit(table.concat(log, " "))
`
	want, got := runLua51(t, prog), runSandbox(t, prog)
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestConcatBounds: one chain of `..` is refused past 16 MiB before it is
// built (40 operands of 16 MiB built 671 MB in one instruction), and errors
// name the script's line.
func TestConcatBounds(t *testing.T) {
	for _, tc := range []struct{ src, err string }{
		{"local s = string.rep('x', 2^24)\nreturn s" + strings.Repeat("..s", 39), "bound.lua:2: string concatenation: result longer than 16777216 bytes"},
		{"local s = 'x'\nwhile true do s = s .. s end", "bound.lua:2: string concatenation: result longer than 16777216 bytes"},
		{"local t = {}\nreturn 'a' .. t", "bound.lua:2: cannot perform concat operation between string and table"},
	} {
		s, err := Compile("bound.lua", tc.src)
		if err != nil {
			t.Fatal(err)
		}
		_, err = NewVM(10*time.Second, 0, nil).Run(context.Background(), s, "r", notification(), 0)
		if err == nil || err.Error() != tc.err {
			t.Errorf("%q: err = %v, want %q", tc.src, err, tc.err)
		}
	}
}

// FuzzFormat: whatever the format and arguments, string.format returns a
// string within its bound or raises a Lua error; it never fails in Go.
// Run with go test -fuzz FuzzFormat ./luaapi; the seeds run with every go
// test.
func FuzzFormat(f *testing.F) {
	for _, seed := range []string{"%5.2f|%-3s|%d%%", "%[1]s%[1]s", "%q", "%#019x", "%-0.0u", "%c", "%", "%99.99f", "%.3s", "%------d"} {
		f.Add(seed, "h\u00e9llo", 3.75)
	}
	st := newState()
	f.Cleanup(func() { st.L.Close() })
	f.Fuzz(func(t *testing.T, format, s string, x float64) {
		L := st.L
		L.Push(L.NewFunction(strFormat))
		L.Push(lua.LString(format))
		for range 4 {
			L.Push(lua.LString(s))
			L.Push(lua.LNumber(x))
		}
		err := L.PCall(9, 1, nil)
		switch {
		case err != nil && strings.Contains(err.Error(), "runtime error"):
			t.Fatalf("format(%q, %q, %v): %v", format, s, x, err)
		case err == nil && len(L.Get(-1).String()) > maxRep:
			t.Fatalf("format(%q, ...): %d bytes", format, len(L.Get(-1).String()))
		}
		L.SetTop(0)
	})
}
