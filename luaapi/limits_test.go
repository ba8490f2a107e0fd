package luaapi

import (
	"strings"
	"testing"
)

// TestSourceLimits: a script too large or nested too deeply is refused
// before gopher-lua compiles it (150,000 nested blocks took it two minutes);
// brackets and keywords inside strings and comments do not count.
func TestSourceLimits(t *testing.T) {
	nest := func(open, close string, n int) string {
		return strings.Repeat(open, n) + strings.Repeat(close, n)
	}
	for _, tc := range []struct{ name, src, err string }{
		{"too large", "return 1\n" + strings.Repeat("-", MaxScriptBytes), "d.lua: 1048585 bytes; scripts are limited to 1048576"},
		{"blocks", nest("do ", "end ", MaxNesting+1), "d.lua:1: blocks and brackets nested deeper than 200 levels"},
		{"140,000 blocks", nest("do ", "end ", 140000), "d.lua:1: blocks and brackets nested deeper than 200 levels"},
		{"brackets on line 3", "local x = 1\n\nreturn " + nest("(", ")", 300), "d.lua:3: blocks and brackets nested deeper than 200 levels"},
		{"tables", "return " + nest("{", "}", 201), "nested deeper than 200"},
		{"functions", nest("(function() ", " end)()", 101), "nested deeper than 200"},
		{"200 levels are fine", nest("do ", "end ", MaxNesting), ""},
		{"in a string", `local s = "` + strings.Repeat("(", 300) + `\"do" return s`, ""},
		{"in single quotes", `local s = '` + strings.Repeat("{", 300) + `' return s`, ""},
		{"in a long string", "local s = [==[\n" + strings.Repeat("do [[ (", 300) + "\n]==] return s", ""},
		{"in a comment", "-- " + strings.Repeat("function ", 300) + "\nreturn 1", ""},
		{"in a long comment", "--[[\n" + strings.Repeat("if ", 300) + "\n]] return 1", ""},
		{"words that contain keywords", "local done, ending, iff = 1, 2, 3\n" + strings.Repeat("undo = done\n", 300), ""},
		{"a long-string call", "local f = function(s) return s end\nreturn " + strings.Repeat("f[[((]]..", 150) + "''", ""},
	} {
		_, err := Compile("d.lua", tc.src)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.err)
		}
	}
}
