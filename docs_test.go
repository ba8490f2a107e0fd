package main

// Tests of the documentation: every config key and flag amx accepts is in
// docs/configuration.md and everything documented there exists; every
// relative link between the Markdown files leads somewhere.

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/amx-dev/amx/rules"
)

// section is the text of a level-2 section of a Markdown file, up to the
// next one.
func section(t *testing.T, file, heading string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.Index(text, "\n## "+heading+"\n")
	if i < 0 {
		t.Fatalf("%s has no section %q", file, heading)
	}
	text = text[i+1:]
	if j := strings.Index(text[3:], "\n## "); j >= 0 {
		text = text[:j+3]
	}
	return text
}

// firstCells returns the backticked words of the first cell of every table
// row in text.
func firstCells(text string) []string {
	var words []string
	code := regexp.MustCompile("`([^`]+)`")
	for line := range strings.Lines(text) {
		if !strings.HasPrefix(line, "| ") {
			continue
		}
		cell, _, _ := strings.Cut(line[2:], " | ")
		for _, m := range code.FindAllStringSubmatch(cell, -1) {
			words = append(words, m[1])
		}
	}
	return words
}

func TestConfigKeysDocumented(t *testing.T) {
	keys := rules.Keys()
	// Sections (auth, state.redis) are documented by their keys.
	var leaves []string
	for _, k := range keys {
		if !slices.ContainsFunc(keys, func(o string) bool { return strings.HasPrefix(o, k+".") || strings.HasPrefix(o, k+"[].") }) {
			leaves = append(leaves, k)
		}
	}
	documented := map[string]bool{}
	for _, w := range firstCells(section(t, "docs/configuration.md", "Configuration reference")) {
		documented[w] = true
	}
	for _, k := range leaves {
		if !documented[k] {
			t.Errorf("config key %s is not documented in docs/configuration.md", k)
		}
		delete(documented, k)
	}
	for w := range documented {
		t.Errorf("docs/configuration.md documents %s, which amx does not accept", w)
	}
}

// flagRE is a flag in -h output: "  -name type".
var flagRE = regexp.MustCompile(`(?m)^  -([a-z][a-z.-]*)`)

func TestFlagsDocumented(t *testing.T) {
	accepted := map[string]bool{}
	for _, sub := range [][]string{nil, {"check"}, {"test"}, {"explain"}, {"state", "ls"}, {"ps"}, {"runs"}} {
		out, _ := exec.Command(amxBin, append(sub, "-h")...).CombinedOutput()
		found := flagRE.FindAllStringSubmatch(string(out), -1)
		if len(found) == 0 {
			t.Fatalf("amx %s -h lists no flags:\n%s", strings.Join(sub, " "), out)
		}
		for _, m := range found {
			accepted[m[1]] = true
		}
	}
	documented := map[string]bool{}
	flag := regexp.MustCompile(`(?:^|\s)--?([a-z][a-z.-]*)`)
	for _, w := range firstCells(section(t, "docs/configuration.md", "Command line")) {
		for _, m := range flag.FindAllStringSubmatch(w, -1) {
			documented[m[1]] = true
		}
	}
	delete(documented, "h") // -h is the flag package's own
	sameNames(t, "flag -", "docs/configuration.md", accepted, documented)
}

// sameNames reports the names amx has that page does not document, and
// those it documents that amx does not have.
func sameNames(t *testing.T, what, page string, has, documented map[string]bool) {
	t.Helper()
	for n := range has {
		if !documented[n] {
			t.Errorf("%s%s is not documented in %s", what, n, page)
		}
	}
	for n := range documented {
		if !has[n] {
			t.Errorf("%s documents %s%s, which amx does not have", page, what, n)
		}
	}
}

// TestDocLinks: every relative link of the Markdown files leads to a file
// that exists, and an #anchor to one of its headings.
func TestDocLinks(t *testing.T) {
	files, _ := filepath.Glob("docs/*.md")
	files = append(files, "README.md", "SECURITY.md", "bench/README.md", "luaapi/README.md")
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, anchor, _ := strings.Cut(target, "#")
			dest := file
			if path != "" {
				dest = filepath.Join(filepath.Dir(file), path)
				if _, err := os.Stat(dest); err != nil {
					t.Errorf("%s: link %s: no such file", file, target)
					continue
				}
			}
			if anchor != "" && !slices.Contains(anchors(t, dest), anchor) {
				t.Errorf("%s: link %s: no heading #%s in %s", file, target, anchor, dest)
			}
		}
	}
}

// anchors are the GitHub anchors of a Markdown file's headings.
func anchors(t *testing.T, file string) []string {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	seen := map[string]int{}
	drop := regexp.MustCompile(`[^\p{L}\p{N} _-]`)
	inCode := false
	for line := range strings.Lines(string(b)) {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if inCode || !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(line, "#"))
		a := strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(h), ""), " ", "-")
		if n := seen[a]; n > 0 {
			out = append(out, a+"-"+itoa(n))
		} else {
			out = append(out, a)
		}
		seen[a]++
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestMetricsDocumented: every am_executor_* metric a running amx serves is
// in the table of docs/operations.md, and every one there is served.
func TestMetricsDocumented(t *testing.T) {
	dir := t.TempDir()
	a := startAmx(t, "-f", writeFile(t, dir, "amx.yml", `
routes:
  - {name: quiet, lua: 'skip("quiet")'}
  - {name: broken, lua: 'error("broken")'}
`))
	// The metrics with a label per route or answer appear once used.
	post(t, nil, "http://"+a.addr+"/", alertJSON("firing", "f1", "2026-12-05T08:00:00Z", `{"alertname":"A"}`))
	_, text := get(t, "http://"+a.addr+"/metrics")
	served := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (am_executor_\w+) `).FindAllStringSubmatch(text, -1) {
		served[m[1]] = true
	}
	documented := map[string]bool{}
	for _, w := range firstCells(section(t, "docs/operations.md", "Metrics")) {
		if strings.HasPrefix(w, "am_executor_") {
			documented[w] = true
		}
	}
	if len(served) == 0 {
		t.Fatalf("no am_executor_* metric served:\n%s", text)
	}
	sameNames(t, "metric ", "docs/operations.md", served, documented)
}
