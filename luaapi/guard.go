package luaapi

import (
	"github.com/yuin/gopher-lua/ast"
)

// A rule usually starts by turning away the alerts it is not for:
//
//	if alert.status ~= "firing" then return end
//	if alert.labels.maintenance == "true" then skip("maintenance window") end
//
// and for most alerts of a busy route that is all it does. Compile finds
// such leading statements, guards, and Run decides them in Go before it
// takes a state: an alert a guard turns away costs a map lookup or two
// instead of an invocation. An alert no guard turns away runs the whole
// script, guards included, so a guard decides nothing the script would not.
//
// A guard is an if statement, without else, whose body is only `return`
// or `skip("constant")`, or such a statement on its own; its condition
// compares alert.status, alert.labels.K and alert.annotations.K with
// string constants, nil, true and false, using ==, ~=, not, and, or.
// Nothing in that can fail, call a function or write anything, and
// nothing ran before it: alert, skip and the alert's tables are amx's own.
// The first statement that is not a guard ends the list, but for one case:
// when it is the script's last, an if without else with such a condition
// (if alert.labels.severity == "page" then exec(...) end), an alert for
// which the condition is false has nothing left to run.

// guard is one leading statement: when cond is true, the script returns,
// or skips with reason.
type guard struct {
	cond   cond
	skip   bool
	reason string
}

// cond evaluates a condition for an alert, as Lua would.
type cond func(a *Alert) value

// value is a Lua value a condition can produce: nil, a boolean or a string.
type value struct {
	kind valueKind
	str  string
}

type valueKind uint8

const (
	nilValue valueKind = iota
	falseValue
	trueValue
	stringValue
)

func (v value) truthy() bool { return v.kind != nilValue && v.kind != falseValue }

func boolValue(b bool) value {
	if b {
		return value{kind: trueValue}
	}
	return value{kind: falseValue}
}

// guards returns the leading guards of a chunk, and the condition of its
// last statement as one more when it is `if C then ... end` with nothing
// after it: when C is false, the script does nothing.
func guards(chunk []ast.Stmt) []guard {
	var list []guard
	for i, st := range chunk {
		g, ok := guardOf(st)
		if !ok {
			if last, ok := lastIf(st); ok && i == len(chunk)-1 {
				list = append(list, last)
			}
			break
		}
		list = append(list, g)
	}
	return list
}

// lastIf returns `if C then ... end`, without else, as a guard that
// returns when C is false.
func lastIf(st ast.Stmt) (guard, bool) {
	c, _, ok := plainIf(st)
	if !ok {
		return guard{}, false
	}
	return guard{cond: func(a *Alert) value { return boolValue(!c(a).truthy()) }}, true
}

// guardOf returns st as a guard, if it is one.
func guardOf(st ast.Stmt) (guard, bool) {
	if g, ok := exit(st); ok { // return or skip(...) on its own
		g.cond = func(*Alert) value { return value{kind: trueValue} }
		return g, true
	}
	c, body, ok := plainIf(st)
	if !ok || len(body) != 1 {
		return guard{}, false
	}
	g, ok := exit(body[0])
	g.cond = c
	return g, ok
}

// plainIf returns the condition and body of st if it is an if statement
// without else whose condition a guard can evaluate.
func plainIf(st ast.Stmt) (cond, []ast.Stmt, bool) {
	ifst, ok := st.(*ast.IfStmt)
	if !ok || len(ifst.Else) != 0 {
		return nil, nil, false
	}
	c, ok := condOf(ifst.Condition)
	return c, ifst.Then, ok
}

// exit returns st as a guard without its condition, if it is `return`
// without values or skip() with a constant reason.
func exit(st ast.Stmt) (guard, bool) {
	switch st := st.(type) {
	case *ast.ReturnStmt:
		return guard{}, len(st.Exprs) == 0
	case *ast.FuncCallStmt:
		call, ok := st.Expr.(*ast.FuncCallExpr)
		if !ok || !isGlobal(call.Func, "skip") || call.Receiver != nil || len(call.Args) > 1 {
			return guard{}, false
		}
		if len(call.Args) == 0 {
			return guard{skip: true}, true
		}
		if reason, ok := call.Args[0].(*ast.StringExpr); ok {
			return guard{skip: true, reason: reason.Value}, true
		}
	}
	return guard{}, false
}

// condOf compiles a condition, if it uses only what a guard may.
func condOf(e ast.Expr) (cond, bool) {
	switch e := e.(type) {
	case *ast.StringExpr:
		v := value{kind: stringValue, str: e.Value}
		return func(*Alert) value { return v }, true
	case *ast.NilExpr:
		return func(*Alert) value { return value{} }, true
	case *ast.TrueExpr:
		return func(*Alert) value { return value{kind: trueValue} }, true
	case *ast.FalseExpr:
		return func(*Alert) value { return value{kind: falseValue} }, true
	case *ast.AttrGetExpr:
		return alertField(e)
	case *ast.UnaryNotOpExpr:
		x, ok := condOf(e.Expr)
		if !ok {
			return nil, false
		}
		return func(a *Alert) value { return boolValue(!x(a).truthy()) }, true
	case *ast.RelationalOpExpr:
		l, lok := condOf(e.Lhs)
		r, rok := condOf(e.Rhs)
		if !lok || !rok || (e.Operator != "==" && e.Operator != "~=") {
			return nil, false
		}
		equal := e.Operator == "=="
		return func(a *Alert) value { return boolValue((l(a) == r(a)) == equal) }, true
	case *ast.LogicalOpExpr:
		l, lok := condOf(e.Lhs)
		r, rok := condOf(e.Rhs)
		if !lok || !rok {
			return nil, false
		}
		if e.Operator == "and" {
			return func(a *Alert) value {
				if v := l(a); !v.truthy() {
					return v
				}
				return r(a)
			}, true
		}
		return func(a *Alert) value {
			if v := l(a); v.truthy() {
				return v
			}
			return r(a)
		}, true
	}
	return nil, false
}

// alertField compiles alert.status, alert.labels.K or alert.annotations.K
// (K a constant, as in alert.labels["K"]).
func alertField(e *ast.AttrGetExpr) (cond, bool) {
	key, ok := e.Key.(*ast.StringExpr)
	if !ok {
		return nil, false
	}
	if isGlobal(e.Object, "alert") && key.Value == "status" {
		return func(a *Alert) value { return value{kind: stringValue, str: a.Status} }, true
	}
	of, ok := e.Object.(*ast.AttrGetExpr)
	if !ok || !isGlobal(of.Object, "alert") {
		return nil, false
	}
	table, ok := of.Key.(*ast.StringExpr)
	if !ok {
		return nil, false
	}
	k := key.Value
	switch table.Value {
	case "labels":
		return func(a *Alert) value { return lookup(a.Labels, k) }, true
	case "annotations":
		return func(a *Alert) value { return lookup(a.Annotations, k) }, true
	}
	return nil, false
}

// lookup is m[k] as Lua sees it: a string, or nil when m has no k.
func lookup(m map[string]string, k string) value {
	if v, ok := m[k]; ok {
		return value{kind: stringValue, str: v}
	}
	return value{}
}

// decide returns what the guards decide for a, and false when the script
// must run.
func decide(gs []guard, a *Alert) (Result, bool) {
	for _, g := range gs {
		if g.cond(a).truthy() {
			return Result{Skipped: g.skip, SkipReason: g.reason}, true
		}
	}
	return Result{}, false
}
