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
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	for len(w.buf) >= maxLine {
		w.emit(w.buf[:maxLine])
		w.buf = w.buf[maxLine:]
	}
	// Reuse the buffer's start instead of growing it forever.
	w.buf = append(w.buf[:0:0], w.buf...)
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
