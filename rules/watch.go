package rules

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Defaults of a Watcher.
const (
	DefaultDebounce = 25 * time.Millisecond
	DefaultBackstop = 30 * time.Second
)

// Watcher reports when the files a configuration was read from change. It
// watches their directories, not the files: editors save by renaming a new
// file over the old one, and Kubernetes swaps a ConfigMap's `..data` symlink,
// and neither is seen by a watch on the file itself. Any event in a watched
// directory starts a debounce; when it is over, the files are checksummed
// and a change is reported only when the sum differs from the one of the
// configuration last loaded. A periodic checksum is the backstop for
// filesystems that drop events (NFS, some container overlays).
type Watcher struct {
	log      *slog.Logger
	fs       *fsnotify.Watcher // nil in tests that feed events themselves
	debounce time.Duration
	backstop time.Duration
	changes  chan struct{}

	mu    sync.Mutex
	files []string
	sum   Sum
}

// NewWatcher returns a Watcher that watches nothing until Watch is called.
// Zero durations take the defaults.
func NewWatcher(log *slog.Logger, debounce, backstop time.Duration) (*Watcher, error) {
	fs, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	w := newWatcher(log, debounce, backstop)
	w.fs = fs
	return w, nil
}

func newWatcher(log *slog.Logger, debounce, backstop time.Duration) *Watcher {
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	if backstop <= 0 {
		backstop = DefaultBackstop
	}
	return &Watcher{
		log:      log,
		debounce: debounce,
		backstop: backstop,
		changes:  make(chan struct{}, 1),
	}
}

// Changes receives a value when the watched files no longer have the sum
// given to Watch. Changes that come while the last one is unread coalesce.
func (w *Watcher) Changes() <-chan struct{} {
	return w.changes
}

// Watch sets the files to watch and the sum of their contents as last
// loaded, successfully or not: after a failed load, the files the broken
// configuration references are watched, so that fixing any of them reloads.
// Directories no longer needed are unwatched.
func (w *Watcher) Watch(files []string, sum Sum) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.files, w.sum = files, sum
	if w.fs == nil {
		return
	}
	want := make(map[string]bool)
	for _, f := range files {
		want[filepath.Dir(f)] = true
	}
	// The watch list, not a list of our own: a directory that was removed
	// and created again has lost its watch, and is added again here.
	for _, dir := range w.fs.WatchList() {
		if !want[dir] {
			w.fs.Remove(dir)
		}
		delete(want, dir)
	}
	for dir := range want {
		// A directory that does not exist yet is tried again on the next
		// Watch; until then the backstop covers it.
		if err := w.fs.Add(dir); err != nil {
			w.log.Warn("cannot watch config directory", "dir", dir, "err", err)
		}
	}
}

// Run watches until ctx is done, then releases the watches.
func (w *Watcher) Run(ctx context.Context) {
	defer w.fs.Close()
	w.loop(ctx, w.fs.Events, w.fs.Errors)
}

func (w *Watcher) loop(ctx context.Context, events <-chan fsnotify.Event, errs <-chan error) {
	// What changed between the load and the first watch has no event.
	w.check()
	backstop := time.NewTicker(w.backstop)
	defer backstop.Stop()
	settle := time.NewTimer(w.debounce)
	settle.Stop()
	defer settle.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			w.log.Debug("config directory changed", "event", ev.String())
			settle.Reset(w.debounce)
		case err, ok := <-errs:
			if !ok {
				return
			}
			// An overflow lost events; the checksum tells what changed.
			w.log.Warn("watching config files", "err", err)
			settle.Reset(w.debounce)
		case <-settle.C:
			w.check()
		case <-backstop.C:
			w.check()
		}
	}
}

// check reports a change when the files' checksum differs from the last
// loaded one. The sum is not updated here: the next Watch sets it to what
// the reload read, so a change that lands during the reload is seen next.
func (w *Watcher) check() {
	w.mu.Lock()
	files, sum := w.files, w.sum
	w.mu.Unlock()
	if len(files) == 0 || Checksum(files) == sum {
		return
	}
	select {
	case w.changes <- struct{}{}:
	default:
	}
}
