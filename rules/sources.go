package rules

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"os"
)

// Sum is a checksum of the files a configuration was read from: the config
// file, the Lua scripts it references and the TLS certificate and key.
type Sum [sha256.Size]byte

// Metric is the sum as a float64 that keeps its lowest 48 bits exactly, for
// am_executor_config_hash (a float64 cannot hold more).
func (s Sum) Metric() float64 {
	var b [8]byte
	copy(b[2:], s[len(s)-6:])
	return float64(binary.BigEndian.Uint64(b[:]))
}

// Checksum reads files and returns their Sum, computed exactly as Load
// computes Config.Sum: a file that changed since Load gives a different sum.
func Checksum(files []string) Sum {
	r := newSources()
	for _, f := range files {
		r.read(f)
	}
	return r.sum()
}

// sources records every file a load reads, in order, and checksums what it
// read, so that a watcher compares exactly the bytes that are in force.
type sources struct {
	files []string
	seen  map[string]bool
	h     hash.Hash
}

func newSources() *sources {
	return &sources{seen: make(map[string]bool), h: sha256.New()}
}

// maxFileBytes caps what a load reads of one file (the config, a script, a
// certificate): a wrong path to a huge file fails instead of filling
// memory. Scripts have a tighter limit of their own (luaapi.MaxScriptBytes).
const maxFileBytes = 16 << 20

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err == nil && len(data) > maxFileBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxFileBytes)
	}
	return data, err
}

func (s *sources) read(path string) ([]byte, error) {
	data, err := readFile(path)
	if s.seen[path] {
		return data, err
	}
	s.seen[path] = true
	s.files = append(s.files, path)
	// Length-prefixed, so that no two different file lists hash alike; a
	// file that cannot be read counts as its error text.
	content := data
	if err != nil {
		content = []byte("\x00error: " + err.Error())
	}
	for _, b := range [][]byte{[]byte(path), content} {
		binary.Write(s.h, binary.BigEndian, uint64(len(b)))
		s.h.Write(b)
	}
	return data, err
}

func (s *sources) sum() Sum {
	var sum Sum
	s.h.Sum(sum[:0])
	return sum
}
