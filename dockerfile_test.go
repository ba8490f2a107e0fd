package main

// What can be checked of the container image without a container engine:
// the Dockerfile's own build command makes a static binary that runs with
// an empty environment, everything it copies from the context exists and
// is not ignored, and its images run as a user other than root.

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// dockerInstructions returns the Dockerfile's instructions, continuation
// lines joined and comments dropped.
func dockerInstructions(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	cur := ""
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") || (line == "" && cur == "") {
			continue
		}
		cur += " " + strings.TrimSuffix(line, "\\")
		if !strings.HasSuffix(line, "\\") {
			out = append(out, strings.TrimSpace(cur))
			cur = ""
		}
	}
	return out
}

func TestDockerfileBuild(t *testing.T) {
	var build string
	for _, in := range dockerInstructions(t) {
		if strings.HasPrefix(in, "RUN CGO_ENABLED=0 go build") {
			build, _, _ = strings.Cut(strings.TrimPrefix(in, "RUN "), "&&")
		}
	}
	if build == "" {
		t.Fatal("the Dockerfile has no RUN CGO_ENABLED=0 go build")
	}
	for _, flag := range []string{"-trimpath", "-X main.buildVersion=${VERSION}"} {
		if !strings.Contains(build, flag) {
			t.Errorf("the build command lacks %s: %s", flag, build)
		}
	}
	// The same command, with the output in a temporary directory.
	bin := filepath.Join(t.TempDir(), "amx")
	build = strings.ReplaceAll(build, "/out/amx", bin)
	cmd := exec.Command("sh", "-c", build)
	cmd.Env = append(os.Environ(), "VERSION=v9.9.9-test", "PATH="+filepath.Join(runtime.GOROOT(), "bin")+":"+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", build, err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	libs, _ := f.ImportedLibraries()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("the binary asks for a dynamic loader")
		}
	}
	if len(libs) > 0 {
		t.Errorf("the binary needs %v", libs)
	}
	run := exec.Command(bin, "version")
	run.Env = []string{}
	out, err := run.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "amx v9.9.9-test ") {
		t.Errorf("amx version with an empty environment: %v %q", err, out)
	}
	check := exec.Command(bin, "check", "packaging/amx.yml")
	check.Env = []string{}
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("the image's default configuration: %v\n%s", err, out)
	}
}

func TestDockerfileContext(t *testing.T) {
	ignore, err := os.ReadFile(".dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	ignored := func(path string) bool {
		for line := range strings.Lines(string(ignore)) {
			p := strings.TrimPrefix(strings.TrimSpace(line), "/")
			if p == "" || strings.HasPrefix(p, "#") {
				continue
			}
			p = strings.TrimPrefix(p, "**/")
			if ok, _ := filepath.Match(p, path); ok || strings.HasPrefix(path, p+"/") {
				return true
			}
			if ok, _ := filepath.Match(p, filepath.Base(path)); ok {
				return true
			}
		}
		return false
	}
	// What the build stage reads: go.mod, go.sum, every Go source file
	// and embedded asset, and the default configuration.
	needed := []string{"go.mod", "go.sum", "packaging/amx.yml"}
	filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if d.IsDir() && (path == ".git" || path == "docs") {
			return filepath.SkipDir
		}
		if !d.IsDir() && (strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") ||
			strings.HasPrefix(path, "engine/web/")) {
			needed = append(needed, path)
		}
		return nil
	})
	for _, path := range needed {
		if _, err := os.Stat(path); err != nil {
			t.Errorf("the build needs %s: %v", path, err)
		}
		if ignored(path) {
			t.Errorf(".dockerignore leaves out %s, which the build needs", path)
		}
	}
	copyRE := regexp.MustCompile(`^COPY (?:--[a-z]+=\S+ )*(.+) \S+$`)
	var stages, users, exposes int
	for _, in := range dockerInstructions(t) {
		switch {
		case strings.HasPrefix(in, "FROM "):
			stages++
		case strings.HasPrefix(in, "USER "):
			users++
			if u := strings.Fields(in)[1]; u == "root" || u == "0" || strings.HasPrefix(u, "0:") {
				t.Errorf("an image runs as root: %s", in)
			}
		case in == "EXPOSE 8080":
			exposes++
		case strings.HasPrefix(in, "COPY ") && !strings.Contains(in, "--from="):
			m := copyRE.FindStringSubmatch(in)
			if m == nil {
				t.Errorf("cannot read %s", in)
				continue
			}
			for _, src := range strings.Fields(m[1]) {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("%s: %v", in, err)
				}
			}
		}
	}
	if stages != 3 || users != 2 || exposes != 2 {
		t.Errorf("%d stages, %d USER, %d EXPOSE 8080: want the build and two images, each non-root, each exposing 8080", stages, users, exposes)
	}
}
