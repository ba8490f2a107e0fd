package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Recorder writes every notification received to a directory, byte for
// byte as it arrived, so that real traffic becomes rule tests (amx test
// reads the files as payloads). It keeps at most a number of files, removing
// the oldest.
type Recorder struct {
	dir      string
	maxFiles int

	mu    sync.Mutex
	files []string // oldest first
}

// NewRecorder records into dir, creating it; files already there count
// toward maxFiles, which must be positive.
func NewRecorder(dir string, maxFiles int) (*Recorder, error) {
	if maxFiles <= 0 {
		return nil, fmt.Errorf("record: the number of files kept must be positive, got %d", maxFiles)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	slices.Sort(files) // names start with the time
	return &Recorder{dir: dir, maxFiles: maxFiles, files: files}, nil
}

// Record writes one notification received at t. The name holds the time
// and the group key, every run of characters awkward in a file name made
// one _: {}:{alertname="DiskFull"} is 20261125T101500.123456789Z_alertname=_DiskFull.json.
func (r *Recorder) Record(t time.Time, groupKey string, body []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	name := t.UTC().Format("20060102T150405.000000000Z") + "_" + fileSafe(groupKey)
	path := filepath.Join(r.dir, name+".json")
	for i := 2; slices.Contains(r.files, path); i++ {
		path = filepath.Join(r.dir, fmt.Sprintf("%s_%d.json", name, i))
	}
	// Write then rename: a reader never sees half a notification.
	tmp := filepath.Join(r.dir, ".recording")
	if err := os.WriteFile(tmp, body, 0o640); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	r.files = append(r.files, path)
	for len(r.files) > r.maxFiles {
		if err := os.Remove(r.files[0]); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("record: %w", err)
		}
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
