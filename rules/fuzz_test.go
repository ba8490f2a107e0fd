package rules

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad feeds any bytes to the config loader as a file beside the
// example scripts. It must not panic, and what it refuses it refuses with
// every problem on a line that names the file. go test runs the seeds and
// testdata/fuzz/FuzzLoad.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yml")
	examples, _ := filepath.Glob("../examples/*.yml")
	for _, name := range append(seeds, examples...) {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		file := filepath.Join(dir, "amx.yml")
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(Source{File: file})
		if err == nil {
			if cfg.Set == nil {
				t.Fatal("a loaded config without rules")
			}
			return
		}
		for line := range strings.Lines(err.Error()) {
			if !strings.HasPrefix(line, file) {
				t.Fatalf("error line %q does not name %s", line, file)
			}
		}
	})
}
