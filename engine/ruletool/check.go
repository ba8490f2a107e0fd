package ruletool

import (
	"fmt"
	"io"
	"strings"

	"github.com/amx-dev/amx/engine"
	"github.com/amx-dev/amx/luaapi"
	"github.com/amx-dev/amx/rules"
)

// Check validates configuration files as the server loads them, compiling
// every Lua script, and reports each like amtool check-config. It returns
// false when any file is invalid.
func Check(w io.Writer, files []string) bool {
	ok := true
	for _, file := range files {
		fmt.Fprintf(w, "Checking '%s'", file)
		cfg, r, err := engine.Load(rules.Source{File: file}, nil)
		if err != nil {
			fmt.Fprintf(w, "  FAILED:\n%s\n\n", indent(err.Error(), "  "))
			ok = false
			continue
		}
		scripts := 0
		for _, route := range r.Set.Routes {
			if route.ScriptName != cfg.File {
				scripts++
			}
		}
		fmt.Fprintf(w, "  SUCCESS\nFound:\n - %d commands\n - %d routes\n - %d script files\n",
			len(cfg.Set.Commands), len(cfg.Set.Routes), scripts)
		// Warnings do not fail the check: a script may define what it
		// calls in ways a reading cannot see.
		var warnings []string
		for _, route := range r.Set.Routes {
			warnings = append(warnings, luaapi.Lint(route.ScriptName, route.Source)...)
		}
		if len(warnings) > 0 {
			fmt.Fprintf(w, "Warnings:\n%s\n", indent(strings.Join(warnings, "\n"), " - "))
		}
		fmt.Fprintln(w)
	}
	return ok
}
