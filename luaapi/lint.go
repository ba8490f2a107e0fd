package luaapi

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/yuin/gopher-lua/ast"
	"github.com/yuin/gopher-lua/parse"

	"github.com/amx-dev/amx/rules"
)

// knownGlobals are the globals a rule can call without defining them: what
// the sandbox gives (see newState) and the host functions.
var knownGlobals = []string{
	"assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal", "rawget", "rawset", "select",
	"setmetatable", "getmetatable", "tonumber", "tostring", "type", "unpack", "xpcall",
	"exec", "env", "skip", "log", "state",
}

// Lint looks for mistakes in a script that compiles but would fail when it
// runs, and returns a warning for each, "name:line: message": exec{}
// options that exec does not know or constant values it would refuse, and
// calls of globals that nothing defines (exce(...) for exec). It reads the
// script as written; what a script computes at run time it cannot judge.
func Lint(name, src string) []string {
	chunk, err := parse.Parse(strings.NewReader(src), name)
	if err != nil {
		return nil // Compile reports it
	}
	defined := declaredNames(chunk, true)
	for _, g := range knownGlobals {
		defined[g] = true
	}
	var warnings []string
	warn := func(line int, format string, args ...any) {
		warnings = append(warnings, fmt.Sprintf("%s:%d: %s", name, line, fmt.Sprintf(format, args...)))
	}
	walk(chunk, func(ast.Stmt) {}, func(e *ast.Expr) {
		call, ok := (*e).(*ast.FuncCallExpr)
		if !ok || call.Receiver != nil {
			return
		}
		id, ok := call.Func.(*ast.IdentExpr)
		if !ok {
			return
		}
		if slices.Contains(removed, id.Value) {
			warn(call.Line(), "%s is not available in amx rules", id.Value)
			return
		}
		if !defined[id.Value] {
			msg := "call of " + id.Value + ", which nothing defines"
			if s := rules.Suggest(id.Value, knownGlobals); s != "" {
				msg += "; did you mean " + s + "?"
			}
			warn(call.Line(), "%s", msg)
			return
		}
		if id.Value == "exec" && len(call.Args) == 1 {
			if t, ok := call.Args[0].(*ast.TableExpr); ok {
				lintExecOptions(t, warn)
			}
		}
	})
	return warnings
}

// lintExecOptions warns of the options of an exec{} table that exec would
// refuse: unknown names, and constants of the wrong kind.
func lintExecOptions(t *ast.TableExpr, warn func(line int, format string, args ...any)) {
	for _, f := range t.Fields {
		key, ok := f.Key.(*ast.StringExpr)
		if !ok {
			continue // positional, or computed
		}
		line := f.Value.Line()
		if !slices.Contains(execOptions, key.Value) {
			msg := "exec{} has no option " + key.Value
			if s := rules.Suggest(key.Value, execOptions); s != "" {
				msg += "; did you mean " + s + "?"
			} else {
				msg += "; the options are " + strings.Join(execOptions, ", ")
			}
			warn(line, "%s", msg)
			continue
		}
		str, isString := f.Value.(*ast.StringExpr)
		_, isNumber := f.Value.(*ast.NumberExpr)
		_, isTrue := f.Value.(*ast.TrueExpr)
		_, isFalse := f.Value.(*ast.FalseExpr)
		isBool := isTrue || isFalse
		switch key.Value {
		case "resolved_signal":
			if isString {
				if _, err := rules.ParseSignal(str.Value); err != nil {
					warn(line, "exec{} option resolved_signal: %v", err)
				}
			} else if isBool {
				warn(line, "exec{} option resolved_signal: want a signal name or number")
			}
		case "timeout", "wait":
			if isString {
				if _, err := time.ParseDuration(str.Value); err != nil {
					warn(line, "exec{} option %s: %q is not a duration like \"10m\"", key.Value, str.Value)
				}
			} else if isBool && key.Value == "timeout" {
				warn(line, "exec{} option timeout: want a duration or seconds")
			}
		case "max":
			if isString || isBool {
				warn(line, "exec{} option max: want a non-negative integer")
			}
		case "ignore_resolved", "notify_on_failure":
			if isString || isNumber {
				warn(line, "exec{} option %s: want true or false", key.Value)
			}
		}
	}
}
