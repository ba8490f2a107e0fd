package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Recorder writes every notification received to a directory, byte for
// byte as it arrived, so that real traffic becomes rule tests (amx test
// reads the files as payloads). It keeps at most a number of files and of
// bytes, removing the oldest.
type Recorder struct {
	dir      string
	maxFiles int
	maxBytes int64

	mu    sync.Mutex
	files []recording // oldest first
	bytes int64       // of files
}

type recording struct {
	path string
	size int64
}

// NewRecorder records into dir, creating it. Files already there count
// toward maxFiles and maxBytes, which must be positive. A directory that
// another user could write to is refused: whoever can plant a file there
// could also steer what amx writes.
func NewRecorder(dir string, maxFiles int, maxBytes int64) (*Recorder, error) {
	if maxFiles <= 0 || maxBytes <= 0 {
		return nil, fmt.Errorf("record: the files and bytes kept must be positive, got %d files and %d bytes", maxFiles, maxBytes)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	if err := privateDir(dir); err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	slices.Sort(paths) // names start with the time
	r := &Recorder{dir: dir, maxFiles: maxFiles, maxBytes: maxBytes}
	for _, p := range paths {
		if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() {
			r.files = append(r.files, recording{p, fi.Size()})
			r.bytes += fi.Size()
		}
	}
	return r, r.trim()
}

// privateDir refuses a directory that a user other than amx's own (or
// root) owns or may write to.
func privateDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s may be written by other users (mode %s): make it writable by amx's user only", dir, fi.Mode().Perm())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s belongs to another user (uid %d)", dir, st.Uid)
	}
	return nil
}

// Record writes one notification received at t. The name holds the time
// and the group key, every run of characters awkward in a file name made
// one _: {}:{alertname="DiskFull"} is 20261125T101500.123456789Z_alertname=_DiskFull.json.
// A notification larger than all the bytes kept is not recorded.
func (r *Recorder) Record(t time.Time, groupKey string, body []byte) error {
	if int64(len(body)) > r.maxBytes {
		return fmt.Errorf("record: %d bytes, more than --record-max-bytes (%d)", len(body), r.maxBytes)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	name := t.UTC().Format("20060102T150405.000000000Z") + "_" + fileSafe(groupKey)
	path := filepath.Join(r.dir, name+".json")
	for i := 2; slices.ContainsFunc(r.files, func(f recording) bool { return f.path == path }); i++ {
		path = filepath.Join(r.dir, fmt.Sprintf("%s_%d.json", name, i))
	}
	// Write a new file of a random name (O_EXCL: never through a link
	// planted there), then rename: a reader never sees half a
	// notification, and the rename replaces a link rather than follow it.
	f, err := os.CreateTemp(r.dir, ".recording-*")
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	_, err = f.Write(body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("record: %w", err)
	}
	r.files = append(r.files, recording{path, int64(len(body))})
	r.bytes += int64(len(body))
	return r.trim()
}

// trim removes the oldest recordings past the limits.
func (r *Recorder) trim() error {
	for len(r.files) > r.maxFiles || r.bytes > r.maxBytes {
		if err := os.Remove(r.files[0].path); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("record: %w", err)
		}
		r.bytes -= r.files[0].size
		r.files = r.files[1:]
	}
	return nil
}

// fileSafe keeps a group key readable in a file name, at most 100 bytes.
func fileSafe(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.', r == '=':
			return r
		}
		return '_'
	}, s)
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '_' }), "_")
	if len(s) > 100 {
		s = s[:100]
	}
	if s == "" {
		s = "nogroup"
	}
	return s
}
