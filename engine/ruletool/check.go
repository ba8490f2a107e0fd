package ruletool

import (
	"fmt"
	"io"

	"github.com/amx-dev/amx/engine"
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
		fmt.Fprintf(w, "  SUCCESS\nFound:\n - %d commands\n - %d routes\n - %d script files\n\n",
			len(cfg.Set.Commands), len(cfg.Set.Routes), scripts)
	}
	return ok
}
