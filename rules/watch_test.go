package rules

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fsnotify/fsnotify"
)

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func changed(w *Watcher) bool {
	select {
	case <-w.Changes():
		return true
	default:
		return false
	}
}

// TestWatcherDebounce feeds the watcher's loop events by hand in a synctest
// bubble: a burst of events is one check when it has been quiet for the
// debounce, events that change nothing report nothing, and the periodic
// backstop finds a change no event announced.
func TestWatcherDebounce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "amx.yml")
		write(t, file, "v1")
		w := newWatcher(slog.New(slog.DiscardHandler), 100*time.Millisecond, 30*time.Second)
		w.Watch([]string{file}, Checksum([]string{file}))
		events := make(chan fsnotify.Event)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		start := time.Now() // the backstop ticks at start+30s, +60s...
		go w.loop(ctx, events, nil)

		// A swap file written beside the config changes nothing we read.
		events <- fsnotify.Event{Name: file + ".swp", Op: fsnotify.Create}
		time.Sleep(time.Second)
		synctest.Wait()
		if changed(w) {
			t.Fatal("an event that changed no watched file reported a change")
		}

		// Events for other files in the directory (a log beside the
		// config) count for nothing, however many.
		write(t, file, "v2")
		for range 100 {
			events <- fsnotify.Event{Name: filepath.Join(filepath.Dir(file), "amx.log"), Op: fsnotify.Write}
			time.Sleep(5 * time.Millisecond)
		}
		synctest.Wait()
		if changed(w) {
			t.Fatal("events for another file reported a change")
		}

		// A burst of events for the file, one every 5 ms for a second,
		// is checked MaxDelay after its first event, not when it ends.
		burst := time.Now()
		done := make(chan struct{})
		go func() {
			defer close(done)
			for time.Since(burst) < time.Second {
				events <- fsnotify.Event{Name: file, Op: fsnotify.Write}
				time.Sleep(5 * time.Millisecond)
			}
		}()
		time.Sleep(MaxDelay - time.Millisecond)
		if changed(w) {
			t.Fatal("reported before the debounce")
		}
		time.Sleep(2 * time.Millisecond)
		if !changed(w) {
			t.Fatal("no change reported MaxDelay after the first event of a burst")
		}
		w.Watch([]string{file}, Checksum([]string{file})) // as the reload does
		<-done
		time.Sleep(time.Second)
		synctest.Wait()
		if changed(w) {
			t.Fatal("a burst reported more than one change")
		}

		// Once Watch has the reloaded sum, the backstop at 30 s finds
		// nothing.
		w.Watch([]string{file}, Checksum([]string{file}))
		time.Sleep(time.Until(start.Add(31 * time.Second)))
		synctest.Wait()
		if changed(w) {
			t.Fatal("the backstop reported a change after Watch took the new sum")
		}

		// A change without any event: the backstop at 60 s sees it.
		write(t, file, "v3")
		time.Sleep(time.Until(start.Add(59 * time.Second)))
		synctest.Wait()
		if changed(w) {
			t.Fatal("reported before the backstop")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if !changed(w) {
			t.Fatal("the backstop did not find the change")
		}
	})
}

// TestWatcherFilesystem changes real files the ways editors, operators and
// Kubernetes do, with a real inotify watcher, and waits for the report.
func TestWatcherFilesystem(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup writes the starting files and returns the ones to watch;
		// change changes one of them.
		setup  func(t *testing.T, dir string) []string
		change func(t *testing.T, dir string)
		// again, when set, changes a file in the directory change
		// replaced, after Watch took the first change as a reload does.
		again func(t *testing.T, dir string)
	}{
		{
			name:   "write in place",
			setup:  plainFiles,
			change: func(t *testing.T, dir string) { write(t, filepath.Join(dir, "amx.yml"), "routes: v2") },
		},
		{
			name:  "rename over, as vim and kubectl cp do",
			setup: plainFiles,
			change: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, ".amx.yml.tmp"), "routes: v2")
				rename(t, filepath.Join(dir, ".amx.yml.tmp"), filepath.Join(dir, "amx.yml"))
			},
		},
		{
			name:  "delete and recreate",
			setup: plainFiles,
			change: func(t *testing.T, dir string) {
				if err := os.Remove(filepath.Join(dir, "amx.yml")); err != nil {
					t.Fatal(err)
				}
				write(t, filepath.Join(dir, "amx.yml"), "routes: v2")
			},
		},
		{
			name:   "a script edited alone, in another directory",
			setup:  plainFiles,
			change: func(t *testing.T, dir string) { write(t, filepath.Join(dir, "rules", "disk.lua"), "-- v2") },
		},
		{
			name:  "the scripts directory replaced",
			setup: plainFiles,
			change: func(t *testing.T, dir string) {
				if err := os.RemoveAll(filepath.Join(dir, "rules")); err != nil {
					t.Fatal(err)
				}
				write(t, filepath.Join(dir, "rules", "disk.lua"), "-- v2")
			},
			again: func(t *testing.T, dir string) { write(t, filepath.Join(dir, "rules", "disk.lua"), "-- v3") },
		},
		{
			name: "ConfigMap ..data symlink swap",
			setup: func(t *testing.T, dir string) []string {
				write(t, filepath.Join(dir, "..2026_11_25_1", "amx.yml"), "routes: v1")
				write(t, filepath.Join(dir, "..2026_11_25_1", "disk.lua"), "-- v1")
				symlink(t, "..2026_11_25_1", filepath.Join(dir, "..data"))
				symlink(t, "..data/amx.yml", filepath.Join(dir, "amx.yml"))
				symlink(t, "..data/disk.lua", filepath.Join(dir, "disk.lua"))
				return []string{filepath.Join(dir, "amx.yml"), filepath.Join(dir, "disk.lua")}
			},
			// What the kubelet does: a new timestamped directory, a new
			// symlink renamed over ..data, the old directory removed.
			change: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "..2026_11_25_2", "amx.yml"), "routes: v1")
				write(t, filepath.Join(dir, "..2026_11_25_2", "disk.lua"), "-- v2")
				symlink(t, "..2026_11_25_2", filepath.Join(dir, "..data_tmp"))
				rename(t, filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data"))
				if err := os.RemoveAll(filepath.Join(dir, "..2026_11_25_1")); err != nil {
					t.Fatal(err)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			files := tc.setup(t, dir)
			w := runWatcher(t, files, 10*time.Millisecond)

			tc.change(t, dir)
			select {
			case <-w.Changes():
			case <-time.After(10 * time.Second):
				t.Fatal("no change reported")
			}
			if tc.again == nil {
				return
			}
			// The removed directory's watch is gone with it; the next
			// Watch must add the new directory.
			scripts := filepath.Join(dir, "rules")
			for end := time.Now().Add(10 * time.Second); slices.Contains(w.fs.WatchList(), scripts); {
				if time.Now().After(end) {
					t.Fatal("the removed directory is still watched")
				}
				time.Sleep(time.Millisecond)
			}
			w.Watch(files, Checksum(files))
			if !slices.Contains(w.fs.WatchList(), scripts) {
				t.Fatalf("the new %s is not watched: %q", scripts, w.fs.WatchList())
			}
			for changed(w) { // reports of the first change
			}
			tc.again(t, dir)
			select {
			case <-w.Changes():
			case <-time.After(10 * time.Second):
				t.Fatal("no change reported in the new directory")
			}
		})
	}
}

// runWatcher watches files with a real inotify watcher, and no backstop
// within the test, until the test ends.
func runWatcher(t *testing.T, files []string, debounce time.Duration) *Watcher {
	t.Helper()
	w, err := NewWatcher(slog.New(slog.DiscardHandler), debounce, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	w.Watch(files, Checksum(files))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// plainFiles is a config file with a script in a subdirectory.
func plainFiles(t *testing.T, dir string) []string {
	files := []string{filepath.Join(dir, "amx.yml"), filepath.Join(dir, "rules", "disk.lua")}
	write(t, files[0], "routes: v1")
	write(t, files[1], "-- v1")
	return files
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func rename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

// TestWatchDirectories: Watch watches the directories of the files it is
// given, and lets go of those no longer needed.
func TestWatchDirectories(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a", "amx.yml"), filepath.Join(dir, "b", "x.lua")
	write(t, a, "")
	write(t, b, "")
	w, err := NewWatcher(slog.New(slog.DiscardHandler), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.fs.Close()
	w.Watch([]string{a, b}, Sum{})
	if got, want := sorted(w.fs.WatchList()), []string{filepath.Dir(a), filepath.Dir(b)}; !slices.Equal(got, want) {
		t.Errorf("watching %q, want %q", got, want)
	}
	w.Watch([]string{a}, Sum{})
	if got, want := w.fs.WatchList(), []string{filepath.Dir(a)}; !slices.Equal(got, want) {
		t.Errorf("watching %q, want %q", got, want)
	}
}

func sorted(s []string) []string {
	slices.Sort(s)
	return s
}

// TestLoadRecordsFiles: a configuration's Files are every file it read,
// config first, and its Sum changes with any of them, even when the load
// fails, so that a watcher can wait for the fix.
func TestLoadRecordsFiles(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "amx.yml")
	script := filepath.Join(dir, "rules", "a.lua")
	write(t, cfg, "routes:\n  - name: a\n    script: rules/a.lua\n  - name: b\n    script: rules/a.lua\n")
	write(t, script, "skip('x')")
	c, err := Load(Source{File: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{cfg, script}; !slices.Equal(c.Files, want) {
		t.Errorf("Files = %q, want %q", c.Files, want)
	}
	if c.Sum != Checksum(c.Files) {
		t.Error("Sum differs from Checksum of the same files")
	}
	write(t, script, "skip('y')")
	if c.Sum == Checksum(c.Files) {
		t.Error("Sum did not change with the script")
	}

	// A broken configuration that names a script not written yet.
	write(t, cfg, "routes:\n  - name: a\n    script: rules/new.lua\n")
	broken, err := Load(Source{File: cfg})
	if err == nil {
		t.Fatal("a missing script loaded")
	}
	newScript := filepath.Join(dir, "rules", "new.lua")
	if want := []string{cfg, newScript}; !slices.Equal(broken.Files, want) {
		t.Errorf("Files of a broken config = %q, want %q", broken.Files, want)
	}
	write(t, newScript, "skip('z')")
	if broken.Sum == Checksum(broken.Files) {
		t.Error("creating the missing script did not change the sum")
	}
}

// TestWatcherBusyDirectory: a file beside the configuration rewritten every
// few milliseconds (a log, a command's output) neither hides an edit nor
// keeps the watcher checking. Before, every write reset the quiet period,
// and an edit waited for the backstop.
func TestWatcherBusyDirectory(t *testing.T) {
	dir := t.TempDir()
	files := plainFiles(t, dir)
	w := runWatcher(t, files, 25*time.Millisecond)
	ctx, cancel := context.WithCancel(t.Context())
	busy := make(chan struct{})
	go func() {
		defer close(busy)
		for i := 0; ctx.Err() == nil; i++ {
			write(t, filepath.Join(dir, "amx.log"), strings.Repeat("x", i%100))
			time.Sleep(5 * time.Millisecond)
		}
	}()
	defer func() { cancel(); <-busy }()
	for i := range 5 {
		write(t, files[0], fmt.Sprintf("routes: v%d", i+2))
		select {
		case <-w.Changes():
		case <-time.After(10 * time.Second):
			t.Fatalf("edit %d: no change reported while another file was written every 5 ms", i+1)
		}
		w.Watch(files, Checksum(files))
	}
}
