package runner

import (
	"bytes"
	"errors"
	"os"
	"sync"
	"sync/atomic"
)

// maxLine is the longest output line logged as one record; longer lines are
// logged in pieces.
const maxLine = 64 << 10

// maxOutput caps what is logged of one pipe of one process: a command
// that writes without end must not fill the log. The rest is read and
// dropped, so the command never blocks on a full pipe, and counted.
const maxOutput = 1 << 20

// lineLogger logs a process's output line by line, tagged with the stream
// when it carries one only.
type lineLogger struct {
	log    *actionLog
	stream string // "" for both
	pid    func() int
	tail   *Tail // nil: none kept

	mu      sync.Mutex
	buf     []byte
	logged  int // bytes taken into buf so far
	dropped int // bytes past maxOutput
}

func (w *lineLogger) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.tail != nil {
		w.tail.Write(b)
	}
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
		if w.stream == "" {
			w.log.Warn("output cut", "pid", w.pid(), "logged_bytes", maxOutput, "dropped_bytes", w.dropped)
		} else {
			w.log.Warn("output cut", "pid", w.pid(), "stream", w.stream, "logged_bytes", maxOutput, "dropped_bytes", w.dropped)
		}
	}
}

func (w *lineLogger) emit(line []byte) {
	if w.stream == "" {
		w.log.Info("output", "pid", w.pid(), "line", string(line))
		return
	}
	w.log.Info("output", "pid", w.pid(), "stream", w.stream, "line", string(line))
}

// outPipe is the read end of a process's output pipe and the logger of
// what comes out of it.
type outPipe struct {
	r   *os.File
	log *lineLogger
}

// readBuffers are the buffers pipes are read into, shared: most processes
// write little or nothing, and a buffer each would be most of what a
// process costs the collector.
var readBuffers = sync.Pool{New: func() any { return new([32 << 10]byte) }}

// drain logs what comes out of the pipe until its end or its read
// deadline, and reports whether it was the deadline.
func (o *outPipe) drain() (cut bool) {
	buf := readBuffers.Get().(*[32 << 10]byte)
	defer readBuffers.Put(buf)
	for {
		n, err := o.r.Read(buf[:])
		o.log.Write(buf[:n])
		if err != nil {
			return errors.Is(err, os.ErrDeadlineExceeded)
		}
	}
}

// drainAll drains the pipes at once, the first in this goroutine, and
// reports whether any was cut at its deadline.
func drainAll(out []*outPipe) (cut bool) {
	var wg sync.WaitGroup
	var others atomic.Bool
	for _, o := range out[1:] {
		wg.Go(func() {
			if o.drain() {
				others.Store(true)
			}
		})
	}
	cut = out[0].drain()
	wg.Wait()
	return cut || others.Load()
}

// Tail keeps the last bytes written to it, up to its size: what a process
// wrote last, for the status page. Its methods are safe for concurrent
// use; the zero Tail keeps nothing.
type Tail struct {
	mu      sync.Mutex
	size    int
	buf     []byte // a ring once full: the oldest byte at written%size
	written int64
}

// NewTail returns a Tail that keeps the last size bytes.
func NewTail(size int) *Tail { return &Tail{size: size} }

// Write keeps the end of b.
func (t *Tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(b)
	if t.size <= 0 {
		return n, nil
	}
	t.written += int64(n)
	if t.written <= int64(t.size) {
		// Everything written so far fits: the buffer grows with it, so
		// a quiet process costs nothing.
		t.buf = append(t.buf, b...)
		return n, nil
	}
	if len(t.buf) < t.size {
		t.buf = append(t.buf, make([]byte, t.size-len(t.buf))...)
	}
	// Byte number i of the output is kept at i%size.
	if len(b) > t.size {
		b = b[len(b)-t.size:]
	}
	at := int((t.written - int64(len(b))) % int64(t.size))
	k := copy(t.buf[at:], b)
	copy(t.buf, b[k:])
	return n, nil
}

// Bytes returns a copy of what is kept, oldest first, and whether earlier
// bytes were dropped.
func (t *Tail) Bytes() (kept []byte, cut bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.written <= int64(t.size) {
		return append([]byte(nil), t.buf...), false
	}
	at := int(t.written % int64(t.size))
	out := make([]byte, 0, t.size)
	return append(append(out, t.buf[at:]...), t.buf[:at]...), true
}
