package luaapi

import (
	"github.com/yuin/gopher-lua/ast"
)

// skip() ends an invocation by raising an error, and unwinding the Go stack
// through gopher-lua costs more than a whole short rule. Most skips are a
// statement of the main chunk outside any function, where returning ends
// the script just as well. So Compile rewrites each such statement
//
//	skip(reason)
//
// to
//
//	if <skip>(skip, reason) then return end
//
// where <skip> (skipReturn) records the skip and answers true when skip is
// still amx's function, and otherwise calls whatever the script put there
// and answers false. A script that declares a local named skip anywhere is
// left as it is. skip() inside a function, or called any other way, raises
// as before; both ends look the same to the caller.

// skipReturnName is the global that holds skipReturn; no script can name it
// as a variable.
const skipReturnName = "<skip>"

// rewriteSkips rewrites the chunk's skip statements in place.
func rewriteSkips(chunk []ast.Stmt) {
	if declares(chunk, "skip") {
		return
	}
	rewriteSkipBlock(chunk)
}

func rewriteSkipBlock(stmts []ast.Stmt) {
	for i, st := range stmts {
		switch st := st.(type) {
		case *ast.FuncCallStmt:
			if call, ok := st.Expr.(*ast.FuncCallExpr); ok && isGlobal(call.Func, "skip") && call.Receiver == nil {
				stmts[i] = skipReturn(call)
			}
		case *ast.DoBlockStmt:
			rewriteSkipBlock(st.Stmts)
		case *ast.WhileStmt:
			rewriteSkipBlock(st.Stmts)
		case *ast.RepeatStmt:
			rewriteSkipBlock(st.Stmts)
		case *ast.IfStmt:
			rewriteSkipBlock(st.Then)
			rewriteSkipBlock(st.Else)
		case *ast.NumberForStmt:
			rewriteSkipBlock(st.Stmts)
		case *ast.GenericForStmt:
			rewriteSkipBlock(st.Stmts)
		}
	}
}

// skipReturn is the statement that replaces the call skip(...).
func skipReturn(call *ast.FuncCallExpr) ast.Stmt {
	fn := &ast.IdentExpr{Value: skipReturnName}
	at(fn, call)
	cond := &ast.FuncCallExpr{Func: fn, Args: append([]ast.Expr{call.Func}, call.Args...)}
	at(cond, call)
	ret := &ast.ReturnStmt{}
	at(ret, call)
	st := &ast.IfStmt{Condition: cond, Then: []ast.Stmt{ret}}
	at(st, call)
	return st
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

// declares reports whether a local variable, parameter or loop variable
// named name is declared anywhere in stmts, functions included; then name
// does not always mean the global.
func declares(stmts []ast.Stmt, name string) bool {
	found := false
	var stmt func(ast.Stmt)
	var expr func(ast.Expr)
	block := func(stmts []ast.Stmt) {
		for _, st := range stmts {
			stmt(st)
		}
	}
	exprs := func(es []ast.Expr) {
		for _, e := range es {
			expr(e)
		}
	}
	names := func(ns []string) {
		for _, n := range ns {
			found = found || n == name
		}
	}
	stmt = func(st ast.Stmt) {
		switch st := st.(type) {
		case *ast.AssignStmt:
			exprs(st.Lhs)
			exprs(st.Rhs)
		case *ast.LocalAssignStmt:
			names(st.Names)
			exprs(st.Exprs)
		case *ast.FuncCallStmt:
			expr(st.Expr)
		case *ast.DoBlockStmt:
			block(st.Stmts)
		case *ast.WhileStmt:
			expr(st.Condition)
			block(st.Stmts)
		case *ast.RepeatStmt:
			expr(st.Condition)
			block(st.Stmts)
		case *ast.IfStmt:
			expr(st.Condition)
			block(st.Then)
			block(st.Else)
		case *ast.NumberForStmt:
			names([]string{st.Name})
			exprs([]ast.Expr{st.Init, st.Limit, st.Step})
			block(st.Stmts)
		case *ast.GenericForStmt:
			names(st.Names)
			exprs(st.Exprs)
			block(st.Stmts)
		case *ast.FuncDefStmt:
			expr(st.Func)
		case *ast.ReturnStmt:
			exprs(st.Exprs)
		}
	}
	expr = func(e ast.Expr) {
		switch e := e.(type) {
		case *ast.AttrGetExpr:
			expr(e.Object)
			expr(e.Key)
		case *ast.TableExpr:
			for _, f := range e.Fields {
				expr(f.Key)
				expr(f.Value)
			}
		case *ast.FuncCallExpr:
			expr(e.Func)
			expr(e.Receiver)
			exprs(e.Args)
		case *ast.LogicalOpExpr:
			expr(e.Lhs)
			expr(e.Rhs)
		case *ast.RelationalOpExpr:
			expr(e.Lhs)
			expr(e.Rhs)
		case *ast.StringConcatOpExpr:
			expr(e.Lhs)
			expr(e.Rhs)
		case *ast.ArithmeticOpExpr:
			expr(e.Lhs)
			expr(e.Rhs)
		case *ast.UnaryMinusOpExpr:
			expr(e.Expr)
		case *ast.UnaryNotOpExpr:
			expr(e.Expr)
		case *ast.UnaryLenOpExpr:
			expr(e.Expr)
		case *ast.FunctionExpr:
			if e.ParList != nil {
				names(e.ParList.Names)
			}
			block(e.Stmts)
		}
	}
	block(stmts)
	return found
}
