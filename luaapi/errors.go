package luaapi

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// gopher-lua says "attempt to index a non-table object(nil) with key 'match'"
// where Lua 5.1 says what was nil: "attempt to index a nil value (field
// 'instance')". explainIndex rewrites the first into the second when the
// script's line shows one expression indexed with that key; otherwise it
// leaves the message as it is.

var (
	indexError = regexp.MustCompile(`^(.*:(\d+): )attempt to index a non-table object\((\w+)\) with key '([^']*)'$`)
	name       = `[A-Za-z_][A-Za-z0-9_]*`
)

func explainIndex(src []string, msg string) string {
	m := indexError.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	line, _ := strconv.Atoi(m[2])
	if line < 1 || line > len(src) {
		return msg
	}
	key := regexp.QuoteMeta(m[4])
	indexed := regexp.MustCompile(`(` + name + `(?:\s*\.\s*` + name + `)*)\s*(?:[.:]\s*` + key + `\b|\[\s*["']` + key + `["']\s*\])`)
	var exprs []string
	for _, e := range indexed.FindAllStringSubmatch(src[line-1], -1) {
		if expr := strings.Join(strings.Fields(e[1]), ""); !slices.Contains(exprs, expr) {
			exprs = append(exprs, expr)
		}
	}
	if len(exprs) != 1 {
		return msg // none, or several that could be it
	}
	expr := exprs[0]
	what := ""
	switch i := strings.LastIndexByte(expr, '.'); {
	case i >= 0:
		what = "field '" + expr[i+1:] + "'"
	case declaredLocal(src[:line], expr):
		what = "local '" + expr + "'"
	default:
		what = "global '" + expr + "'"
	}
	return m[1] + "attempt to index a " + m[3] + " value (" + what + ")"
}

// declaredLocal reports whether lines declare v as a local or a parameter.
func declaredLocal(lines []string, v string) bool {
	decl := regexp.MustCompile(`\blocal\s+(?:function\s+)?(?:` + name + `\s*,\s*)*` + regexp.QuoteMeta(v) + `\b|\bfunction\b[^(]*\([^)]*\b` + regexp.QuoteMeta(v) + `\b|\bfor\s+(?:` + name + `\s*,\s*)*` + regexp.QuoteMeta(v) + `\b`)
	for _, l := range lines {
		if decl.MatchString(l) {
			return true
		}
	}
	return false
}
