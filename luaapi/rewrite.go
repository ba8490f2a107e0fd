package luaapi

import (
	"slices"
	"strconv"

	"github.com/yuin/gopher-lua/ast"
)

// Compile rewrites two calls that cost more than the rest of a short rule
// into calls of host functions under global names no script can write as a
// variable (it can still reach them as _G["<exec>"], and they check what
// they are given). Each checks at run time that the script has not put
// another function in exec or skip, and behaves exactly as the call it
// stands for; tests compare every case with and without the rewrite. A
// script that declares a local exec or skip anywhere keeps that call as
// written, and one that the rewrite leaves short of registers compiles as
// written.
//
// skip() ends an invocation by raising an error, and unwinding the Go stack
// through gopher-lua is slow. But most skips are a statement of the main
// chunk outside any function, where returning ends the script just as well:
//
//	skip(reason)  →  if <skip>(skip, reason) then return end
//
// exec{...} builds a table only for exec to read it once, and gopher-lua
// keeps three structures per string key of a table. So a table constructor
// of positional and name = value fields becomes the fields themselves, in
// the script's order, positional ones keyed by their index:
//
//	exec{"cmd", host, max = 1}  →  <exec>(exec, 1, "cmd", 2, host, "max", 1)
//
// state.incr returns the sum, which costs a read of the store: a round trip
// when the state is in Redis. A call that is a statement throws the sum
// away, so it becomes a call that only records the increment:
//
//	state.incr(key, n)  →  <incr>(state, key, n)
//
// It differs from the call as written in one case, documented: on a key
// that holds a string, the call as written fails the script, the rewritten
// one leaves it to admission, which refuses the increment with a warning.

const (
	skipReturnName = "<skip>"
	execFieldsName = "<exec>"
	concatName     = "<concat>"
	incrStmtName   = "<incr>"
	// maxFields bounds the fields of a rewritten exec{}: each takes two
	// registers of the call, and gopher-lua gives a function 200.
	maxFields = 64
)

// rewrite rewrites chunk in place.
func rewrite(chunk []ast.Stmt) {
	declared := declaredNames(chunk, false)
	if !declared["skip"] {
		rewriteSkips(chunk)
	}
	walk(chunk, func(st ast.Stmt) {
		if st, ok := st.(*ast.FuncCallStmt); ok && !declared["state"] {
			rewriteIncr(st)
		}
	}, func(e *ast.Expr) {
		if call, ok := (*e).(*ast.FuncCallExpr); ok && !declared["exec"] {
			rewriteExec(call)
		}
	})
}

// declaredNames returns the names a chunk declares anywhere: locals, loop
// variables and parameters, and with globals the names it assigns or
// defines functions under as well.
func declaredNames(chunk []ast.Stmt, globals bool) map[string]bool {
	declared := map[string]bool{}
	walk(chunk, func(st ast.Stmt) {
		switch st := st.(type) {
		case *ast.LocalAssignStmt:
			for _, n := range st.Names {
				declared[n] = true
			}
		case *ast.NumberForStmt:
			declared[st.Name] = true
		case *ast.GenericForStmt:
			for _, n := range st.Names {
				declared[n] = true
			}
		case *ast.AssignStmt:
			for _, l := range st.Lhs {
				if id, ok := l.(*ast.IdentExpr); ok && globals {
					declared[id.Value] = true
				}
			}
		case *ast.FuncDefStmt:
			if id, ok := st.Name.Func.(*ast.IdentExpr); ok && globals {
				declared[id.Value] = true
			}
		}
	}, func(e *ast.Expr) {
		if f, ok := (*e).(*ast.FunctionExpr); ok && f.ParList != nil {
			for _, n := range f.ParList.Names {
				declared[n] = true
			}
		}
	})
	return declared
}

// rewriteSkips rewrites the skip statements of a block of the main chunk,
// and of the blocks within it, but not of functions.
func rewriteSkips(stmts []ast.Stmt) {
	for i, st := range stmts {
		switch st := st.(type) {
		case *ast.FuncCallStmt:
			if call, ok := st.Expr.(*ast.FuncCallExpr); ok && isGlobal(call.Func, "skip") && call.Receiver == nil {
				stmts[i] = skipReturnStmt(call)
			}
		case *ast.DoBlockStmt:
			rewriteSkips(st.Stmts)
		case *ast.WhileStmt:
			rewriteSkips(st.Stmts)
		case *ast.RepeatStmt:
			rewriteSkips(st.Stmts)
		case *ast.IfStmt:
			rewriteSkips(st.Then)
			rewriteSkips(st.Else)
		case *ast.NumberForStmt:
			rewriteSkips(st.Stmts)
		case *ast.GenericForStmt:
			rewriteSkips(st.Stmts)
		}
	}
}

// skipReturnStmt is the statement that replaces the call skip(...).
func skipReturnStmt(call *ast.FuncCallExpr) ast.Stmt {
	cond := &ast.FuncCallExpr{Func: ident(skipReturnName, call), Args: append([]ast.Expr{call.Func}, call.Args...)}
	at(cond, call)
	ret := &ast.ReturnStmt{}
	at(ret, call)
	st := &ast.IfStmt{Condition: cond, Then: []ast.Stmt{ret}}
	at(st, call)
	return st
}

// rewriteExec turns call into a call of execFields if it is exec{...} with
// a table constructor that can be passed as arguments.
func rewriteExec(call *ast.FuncCallExpr) {
	if !isGlobal(call.Func, "exec") || call.Receiver != nil || len(call.Args) != 1 {
		return
	}
	table, ok := call.Args[0].(*ast.TableExpr)
	if !ok || len(table.Fields) > maxFields {
		return
	}
	args := []ast.Expr{call.Func}
	n := 0
	for i, f := range table.Fields {
		key := f.Key
		switch key.(type) {
		case nil:
			n++
			num := &ast.NumberExpr{Value: strconv.Itoa(n)}
			at(num, f.Value)
			key = num
		case *ast.StringExpr:
		default:
			return // [expr] = value: keep the table's own rules for keys
		}
		if i == len(table.Fields)-1 && multiValued(f.Value) {
			// A table takes all the values of its last positional
			// field, and gopher-lua those of a named last field too.
			return
		}
		args = append(args, key, f.Value)
	}
	call.Func = ident(execFieldsName, call)
	call.Args = args
}

// rewriteIncr turns the statement state.incr(...) into a call of
// incrStmtName.
func rewriteIncr(st *ast.FuncCallStmt) {
	call, ok := st.Expr.(*ast.FuncCallExpr)
	if !ok || call.Receiver != nil {
		return
	}
	get, ok := call.Func.(*ast.AttrGetExpr)
	if !ok || !isGlobal(get.Object, "state") {
		return
	}
	if key, ok := get.Key.(*ast.StringExpr); !ok || key.Value != "incr" {
		return
	}
	call.Args = append([]ast.Expr{get.Object}, call.Args...)
	call.Func = ident(incrStmtName, call)
}

// multiValued reports whether e, last in a list, gives all its values.
func multiValued(e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.FuncCallExpr:
		return !e.AdjustRet
	case *ast.Comma3Expr:
		return !e.AdjustRet
	}
	return false
}

func ident(name string, of ast.PositionHolder) *ast.IdentExpr {
	id := &ast.IdentExpr{Value: name}
	at(id, of)
	return id
}

// at gives a new node the position of the one it stands for, so that errors
// name the script's own line.
func at(n, of ast.PositionHolder) {
	n.SetLine(of.Line())
	n.SetLastLine(of.LastLine())
}

func isGlobal(e ast.Expr, name string) bool {
	id, ok := e.(*ast.IdentExpr)
	return ok && id.Value == name
}

// walk calls stmt for every statement and expr for every expression in
// stmts, functions included, each before what it contains. expr gets the
// place that holds the expression and may replace it; walk then goes into
// the replacement.
func walk(stmts []ast.Stmt, stmt func(ast.Stmt), expr func(*ast.Expr)) {
	var s func(ast.Stmt)
	var e func(*ast.Expr)
	block := func(stmts []ast.Stmt) {
		for _, st := range stmts {
			s(st)
		}
	}
	exprs := func(es ...*ast.Expr) {
		for _, x := range es {
			if *x != nil {
				e(x)
			}
		}
	}
	list := func(es []ast.Expr) {
		for i := range es {
			exprs(&es[i])
		}
	}
	s = func(st ast.Stmt) {
		stmt(st)
		switch st := st.(type) {
		case *ast.AssignStmt:
			list(st.Lhs)
			list(st.Rhs)
		case *ast.LocalAssignStmt:
			list(st.Exprs)
		case *ast.FuncCallStmt:
			exprs(&st.Expr)
		case *ast.DoBlockStmt:
			block(st.Stmts)
		case *ast.WhileStmt:
			exprs(&st.Condition)
			block(st.Stmts)
		case *ast.RepeatStmt:
			block(st.Stmts)
			exprs(&st.Condition)
		case *ast.IfStmt:
			exprs(&st.Condition)
			block(st.Then)
			block(st.Else)
		case *ast.NumberForStmt:
			exprs(&st.Init, &st.Limit, &st.Step)
			block(st.Stmts)
		case *ast.GenericForStmt:
			list(st.Exprs)
			block(st.Stmts)
		case *ast.FuncDefStmt:
			exprs(&st.Name.Func, &st.Name.Receiver)
			var fn ast.Expr = st.Func
			e(&fn) // a function definition stays one
		case *ast.ReturnStmt:
			list(st.Exprs)
		}
	}
	e = func(p *ast.Expr) {
		expr(p)
		switch x := (*p).(type) {
		case *ast.AttrGetExpr:
			exprs(&x.Object, &x.Key)
		case *ast.TableExpr:
			for _, f := range x.Fields {
				exprs(&f.Key, &f.Value)
			}
		case *ast.FuncCallExpr:
			exprs(&x.Func, &x.Receiver)
			list(x.Args)
		case *ast.LogicalOpExpr:
			exprs(&x.Lhs, &x.Rhs)
		case *ast.RelationalOpExpr:
			exprs(&x.Lhs, &x.Rhs)
		case *ast.StringConcatOpExpr:
			exprs(&x.Lhs, &x.Rhs)
		case *ast.ArithmeticOpExpr:
			exprs(&x.Lhs, &x.Rhs)
		case *ast.UnaryMinusOpExpr:
			exprs(&x.Expr)
		case *ast.UnaryNotOpExpr:
			exprs(&x.Expr)
		case *ast.UnaryLenOpExpr:
			exprs(&x.Expr)
		case *ast.FunctionExpr:
			block(x.Stmts)
		}
	}
	block(stmts)
}

// boundConcat rewrites every chain of `..` into a call of the host
// function concatName, which refuses a result longer than maxRep before
// building it and otherwise does what gopher-lua's OP_CONCAT does. One
// OP_CONCAT joins all the operands of a chain in a single instruction,
// which the watchdog cannot interrupt: 40 operands of 16 MiB built 671 MB
// at once. Unlike the rewrites above this is not for speed, so scripts get
// it compiled either way.
//
//	a .. b .. c  →  <concat>(a, b, c)
func boundConcat(chunk []ast.Stmt) {
	walk(chunk, func(ast.Stmt) {}, func(p *ast.Expr) {
		c, ok := (*p).(*ast.StringConcatOpExpr)
		if !ok {
			return
		}
		call := &ast.FuncCallExpr{Func: ident(concatName, c), Args: []ast.Expr{c.Lhs}}
		at(call, c)
		rest := c.Rhs
		for {
			next, ok := rest.(*ast.StringConcatOpExpr)
			if !ok {
				break
			}
			call.Args = append(call.Args, next.Lhs)
			rest = next.Rhs
		}
		call.Args = append(call.Args, rest)
		// One result, as the operator gives, wherever the call stands.
		call.AdjustRet = true
		*p = call
	})
}

// maxKeys bounds the names readKeys returns of each kind: prefill looks
// each one up for every alert.
const maxKeys = 16

// readKeys returns the names a chunk reads by name from a labels and an
// annotations table: K in alert.labels.K, alert.labels["K"] and
// alert.annotations.K, and in x.K for a variable x that may hold one of them
// (local l = alert.labels). A name it misses is read through the proxy, a
// name too many is one more lookup.
func readKeys(chunk []ast.Stmt) (labels, annotations []string) {
	add := func(list []string, k string) []string {
		if len(list) < maxKeys && !slices.Contains(list, k) {
			list = append(list, k)
		}
		return list
	}
	walk(chunk, func(ast.Stmt) {}, func(e *ast.Expr) {
		get, ok := (*e).(*ast.AttrGetExpr)
		if !ok {
			return
		}
		key, ok := get.Key.(*ast.StringExpr)
		if !ok {
			return
		}
		switch obj := get.Object.(type) {
		case *ast.AttrGetExpr:
			if of, ok := obj.Key.(*ast.StringExpr); ok && of.Value == "labels" {
				labels = add(labels, key.Value)
			} else if ok && of.Value == "annotations" {
				annotations = add(annotations, key.Value)
			}
		case *ast.IdentExpr:
			switch obj.Value {
			case "alert", "msg", "_G", "string", "table", "math":
			default:
				labels = add(labels, key.Value)
				annotations = add(annotations, key.Value)
			}
		}
	})
	return labels, annotations
}
