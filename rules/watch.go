package rules

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Defaults of a Watcher.
const (
	DefaultDebounce = 25 * time.Millisecond
	DefaultBackstop = 30 * time.Second
	// MaxDelay bounds the debounce: files are checked at most this long
	// after the first event, however many follow.
	MaxDelay = 100 * time.Millisecond
)

// Watcher reports when the files a configuration was read from change. It
// watches their directories, not the files: editors save by renaming a new
// file over the old one, and Kubernetes swaps a ConfigMap's `..data` symlink,
// and neither is seen by a watch on the file itself. Only events that name a
// watched file, or a `..`-prefixed entry such as `..data`, count: a log
// written beside the configuration must not keep the watcher busy. An event
// that counts starts a debounce, bounded by MaxDelay from the first; when
// it is over, the files are checksummed and a change is reported only when
// the sum differs from the one of the configuration last loaded. A periodic
// checksum is the backstop for filesystems that drop events (NFS, some
// container overlays).
type Watcher struct {
	log      *slog.Logger
	fs       *fsnotify.Watcher // nil in tests that feed events themselves
	debounce time.Duration
	backstop time.Duration
	changes  chan struct{}

	mu    sync.Mutex
	files []string
	sum   Sum
	names map[string]bool // the watched files and their directories, for events
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
	w.names = make(map[string]bool, len(files))
	for _, f := range files {
		// The file, and the directories it is in: renaming a directory
		// of scripts over another changes what is read.
		for p := filepath.Clean(f); !w.names[p]; p = filepath.Dir(p) {
			w.names[p] = true
		}
	}
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
	var first time.Time // of the events since the last check; zero: none
	wake := func() {
		now := time.Now()
		if first.IsZero() {
			first = now
		}
		settle.Reset(min(w.debounce, first.Add(MaxDelay).Sub(now)))
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			// No log line per event: one written beside the configuration
			// would be an event itself.
			if w.counts(ev) {
				wake()
			}
		case err, ok := <-errs:
			if !ok {
				return
			}
			// An overflow lost events; the checksum tells what changed.
			w.log.Warn("watching config files", "err", err)
			wake()
		case <-settle.C:
			first = time.Time{}
			w.check()
		case <-backstop.C:
			w.check()
		}
	}
}

// counts reports whether an event may change what the configuration reads:
// it names a watched file or a directory one is in, or a `..` entry
// (Kubernetes' `..data` and the timestamped directories it points to) that
// watched files resolve through.
func (w *Watcher) counts(ev fsnotify.Event) bool {
	if strings.HasPrefix(filepath.Base(ev.Name), "..") {
		return true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.names[filepath.Clean(ev.Name)]
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
