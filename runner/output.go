package runner

import (
	"bytes"
	"log/slog"
	"sync"
)

// maxLine is the longest output line logged as one record; longer lines are
// logged in pieces.
const maxLine = 64 << 10

// maxOutput caps what is logged of one stream of one process: a command
// that writes without end must not fill the log. The rest is read and
// dropped, so the command never blocks on a full pipe, and counted.
const maxOutput = 1 << 20

// lineLogger logs a process's output line by line, tagged with the stream.
type lineLogger struct {
	log    *slog.Logger
	stream string
	pid    func() int

	mu      sync.Mutex
	buf     []byte
	logged  int // bytes taken into buf so far
	dropped int // bytes past maxOutput
}

func (w *lineLogger) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(b)
	if room := maxOutput - w.logged; len(b) > room {
		w.dropped += len(b) - max(room, 0)
		b = b[:max(room, 0)]
	}
	w.logged += len(b)
	w.buf = append(w.buf, b...)
	start := 0
	for {
		rest := w.buf[start:]
		if i := bytes.IndexByte(rest, '\n'); i >= 0 && i <= maxLine {
			w.emit(rest[:i])
			start += i + 1
		} else if len(rest) >= maxLine {
			w.emit(rest[:maxLine])
			start += maxLine
		} else {
			break
		}
	}
	// Keep only the unfinished line, at the start of the same buffer.
	w.buf = w.buf[:copy(w.buf, w.buf[start:])]
	return n, nil
}

// flush logs a last line that ended without a newline.
func (w *lineLogger) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(w.buf)
		w.buf = nil
	}
	if w.dropped > 0 {
		w.log.Warn("output cut", "pid", w.pid(), "stream", w.stream, "logged_bytes", maxOutput, "dropped_bytes", w.dropped)
	}
}

func (w *lineLogger) emit(line []byte) {
	w.log.Info("output", "pid", w.pid(), "stream", w.stream, "line", string(line))
}
