package engine

import (
	"errors"
	"log/slog"

	"github.com/amx-dev/amx/luaapi"
	"github.com/amx-dev/amx/rules"
)

// Rules is a rules.Set with every Lua route compiled: the immutable snapshot
// one notification is decided against from start to end.
type Rules struct {
	Set     *rules.Set
	scripts []*luaapi.Script // by index of Set.Routes
	vm      *luaapi.VM
}

// Load loads a configuration and compiles its rules: what the server does
// at start and on reload, and what amx check, test and explain do. When the
// configuration is invalid, cfg is still returned with its Files and Sum
// (see rules.Load), so that a watcher can wait for a fix.
func Load(src rules.Source, log *slog.Logger) (cfg *rules.Config, r *Rules, err error) {
	cfg, err = rules.Load(src)
	if err != nil {
		// The scripts that could be read are compiled all the same, so
		// that one check shows every problem, syntax errors included.
		if _, lerr := compileScripts(cfg.Set); lerr != nil {
			err = errors.Join(err, lerr)
		}
		return cfg, nil, err
	}
	r, err = Compile(cfg.Set, log)
	return cfg, r, err
}

// Compile compiles every route's script. A syntax error is a configuration
// error naming script:line; all of them are reported at once.
func Compile(set *rules.Set, log *slog.Logger) (*Rules, error) {
	scripts, err := compileScripts(set)
	if err != nil {
		return nil, err
	}
	return &Rules{Set: set, scripts: scripts, vm: luaapi.NewVM(set.LuaTimeout, set.LuaMemoryLimit, log)}, nil
}

// compileScripts compiles every route's script, by index of set.Routes.
func compileScripts(set *rules.Set) ([]*luaapi.Script, error) {
	scripts := make([]*luaapi.Script, len(set.Routes))
	var errs []error
	for i, route := range set.Routes {
		s, err := luaapi.Compile(route.ScriptName, route.Source)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		scripts[i] = s
	}
	return scripts, errors.Join(errs...)
}
