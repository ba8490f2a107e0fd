package luaapi

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestLint: what amx check warns of in a script that compiles.
func TestLint(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want []string
	}{
		{`exce("x")`, []string{"r.lua:1: call of exce, which nothing defines; did you mean exec?"}},
		{`exec{"a", maxx = 1}`, []string{"r.lua:1: exec{} has no option maxx; did you mean max?"}},
		{`exec{"a", bogus = 1}`, []string{"r.lua:1: exec{} has no option bogus; the options are cooldown, ignore_resolved, key, max, notify_on_failure, resolved_signal, stdin, timeout, wait"}},
		{"exec{\"a\",\n  resolved_signal = \"SIGFOO\"}", []string{`r.lua:2: exec{} option resolved_signal: unknown signal "SIGFOO"`}},
		{`exec{"a", timeout = "10 minutes", wait = "soon"}`, []string{
			`r.lua:1: exec{} option timeout: "10 minutes" is not a duration like "10m"`,
			`r.lua:1: exec{} option wait: "soon" is not a duration like "10m"`}},
		{`exec{"a", max = "one", ignore_resolved = 1}`, []string{
			"r.lua:1: exec{} option max: want a non-negative integer",
			"r.lua:1: exec{} option ignore_resolved: want true or false"}},
		{`print("x")`, []string{"r.lua:1: print is not available in amx rules"}},
		// What a script defines, or passes on, it may call.
		{`local function f() end f() g = function() end g() function h() end h()
for _, k in ipairs({}) do end local t = {} table.insert(t, 1) string.format("%d", 1)
local function call(fn) fn() end`, nil},
		{`exec{"a", host, max = 1, timeout = "10m", wait = false, resolved_signal = "TERM", stdin = msg.group_key, notify_on_failure = true}`, nil},
		{`local opts = "x" exec{"a", max = opts}`, nil}, // not a constant: not judged
	} {
		if got := Lint("r.lua", tc.src); !slices.Equal(got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.src, got, tc.want)
		}
	}
}

// TestLintExamples: the shipped rules give no warning.
func TestLintExamples(t *testing.T) {
	files, _ := filepath.Glob("../examples/rules/*.lua")
	if len(files) == 0 {
		t.Fatal("no example rules")
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if w := Lint(f, string(src)); len(w) > 0 {
			t.Errorf("%s: %q", f, w)
		}
	}
}
