package runner

import (
	"bytes"
	"log/slog"
	"sync"
)

// maxLine is the longest output line logged as one record; longer lines are
// logged in pieces.
const maxLine = 64 << 10

// lineLogger logs a process's output line by line, tagged with the stream.
type lineLogger struct {
	log    *slog.Logger
	stream string
	pid    func() int

	mu  sync.Mutex
	buf []byte
}

func (w *lineLogger) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
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
	return len(b), nil
}

// flush logs a last line that ended without a newline.
func (w *lineLogger) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(w.buf)
		w.buf = nil
	}
}

func (w *lineLogger) emit(line []byte) {
	w.log.Info("output", "pid", w.pid(), "stream", w.stream, "line", string(line))
}
