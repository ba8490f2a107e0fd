package rules

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Error is one problem in a configuration file, with the position and the
// dotted path of the field it concerns.
type Error struct {
	File   string
	Line   int
	Column int
	Field  string
	Msg    string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// decoder walks a yaml.Node tree and collects every problem instead of
// stopping at the first, so an operator fixes a file in one round.
//
// yaml.v3's own decoder with KnownFields(true) is strict too, but its
// messages name Go types ("field x not found in type rules.Command") and
// not the path of the field in the file.
type decoder struct {
	file string
	read *sources // reads the files the configuration references
	errs []error  // each an *Error
	// keys, when set, collects the key paths every mapping accepts, for
	// Keys.
	keys map[string]bool
}

func (d *decoder) errorf(n *yaml.Node, field, format string, args ...any) {
	e := &Error{File: d.file, Field: field, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	d.errs = append(d.errs, e)
}

// err returns every problem found, in file order.
func (d *decoder) err() error {
	slices.SortStableFunc(d.errs, func(a, b error) int {
		ea, eb := a.(*Error), b.(*Error)
		return cmp.Or(cmp.Compare(ea.Line, eb.Line), cmp.Compare(ea.Column, eb.Column))
	})
	return errors.Join(d.errs...)
}

// field is how one key of a mapping is decoded.
type field func(value *yaml.Node, path string)

// mapping decodes a mapping node key by key; unknown and repeated keys are
// errors. A null node is an empty mapping.
func (d *decoder) mapping(n *yaml.Node, path string, fields map[string]field) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want a mapping, got %s", describe(n))
		return
	}
	if d.keys != nil {
		for name := range fields {
			d.keys[indexRE.ReplaceAllString(join(path, name), "[]")] = true
		}
	}
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := k.Value
		sub := join(path, name)
		if seen[name] {
			d.errorf(k, sub, "repeated key")
			continue
		}
		seen[name] = true
		f, ok := fields[name]
		if !ok {
			msg := "unknown field"
			if s := Suggest(name, slices.Sorted(maps.Keys(fields))); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			d.errorf(k, sub, "%s", msg)
			continue
		}
		f(v, sub)
	}
}

// str decodes any non-null scalar as its text, as yaml.v2 did for string
// fields: `args: [10]` keeps working.
func (d *decoder) str(n *yaml.Node, path string, out *string) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.errorf(n, path, "want a string, got %s", describe(n))
		return
	}
	*out = n.Value
}

// boolean accepts true/false and the YAML 1.1 words (yes/no, on/off) that
// yaml.v2, and so the old executor, accepted.
func (d *decoder) boolean(n *yaml.Node, path string, out *bool) {
	n = resolve(n)
	var b bool
	if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
		d.errorf(n, path, "want true or false, got %s", describe(n))
		return
	}
	*out = b
}

// integer reads an integer into out, and reports whether it could.
func (d *decoder) integer(n *yaml.Node, path string, out *int64) bool {
	n = resolve(n)
	var i int64
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil {
		d.errorf(n, path, "want an integer, got %s", describe(n))
		return false
	}
	*out = i
	return true
}

// positive accepts a positive integer, as an int.
func (d *decoder) positive(n *yaml.Node, path string, out *int) {
	var v int64
	if !d.integer(n, path, &v) {
		return
	}
	if v <= 0 {
		d.errorf(n, path, "must be positive")
		return
	}
	*out = int(clamp(v))
}

// bytes accepts a positive size in bytes, or with a KiB, MiB or GiB suffix.
func (d *decoder) bytes(n *yaml.Node, path string, out *uint64) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.errorf(n, path, "%s, got %s", sizeWanted, describe(n))
		return
	}
	v, err := ParseSize(n.Value)
	if err != nil {
		d.errorf(n, path, "%v", err)
		return
	}
	*out = v
}

const sizeWanted = "want a size like 256MiB or a number of bytes"

// ParseSize reads a positive size in bytes, or with a KiB, MiB or GiB
// suffix ("256MiB").
func ParseSize(s string) (uint64, error) {
	text, unit := s, uint64(1)
	for suffix, size := range map[string]uint64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if t, ok := strings.CutSuffix(text, suffix); ok {
			text, unit = strings.TrimSpace(t), size
		}
	}
	v, err := strconv.ParseUint(text, 10, 64)
	if err != nil || v == 0 || v > math.MaxUint64/unit {
		return 0, fmt.Errorf("%s, got %q", sizeWanted, s)
	}
	return v * unit, nil
}

// duration accepts Go durations ("90s", "10m", "1h30m"); zero means unset.
func (d *decoder) duration(n *yaml.Node, path string, out *time.Duration) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.errorf(n, path, "want a duration like 30s or 10m, got %s", describe(n))
		return
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		d.errorf(n, path, "want a duration like 30s or 10m, got %q", n.Value)
		return
	}
	*out = v
}

// positiveDuration is a duration that must not be zero.
func (d *decoder) positiveDuration(n *yaml.Node, path string, out *time.Duration) {
	var v time.Duration
	d.duration(n, path, &v)
	if r := resolve(n); v == 0 && r.Kind == yaml.ScalarNode && !isNull(r) && isZeroDuration(r.Value) {
		d.errorf(n, path, "must be positive")
		return
	}
	if v > 0 {
		*out = v
	}
}

func isZeroDuration(s string) bool {
	v, err := time.ParseDuration(s)
	return err == nil && v == 0
}

func (d *decoder) strings(n *yaml.Node, path string, out *[]string) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "want a list of strings, got %s", describe(n))
		return
	}
	s := make([]string, len(n.Content))
	for i, item := range n.Content {
		d.str(item, fmt.Sprintf("%s[%d]", path, i), &s[i])
	}
	*out = s
}

func (d *decoder) stringMap(n *yaml.Node, path string, out *map[string]string) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want a mapping of strings, got %s", describe(n))
		return
	}
	m := make(map[string]string, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		sub := join(path, k.Value)
		if _, dup := m[k.Value]; dup {
			d.errorf(k, sub, "repeated key")
			continue
		}
		var s string
		d.str(v, sub, &s)
		m[k.Value] = s
	}
	*out = m
}

// sequence calls item for every element of a sequence node.
func (d *decoder) sequence(n *yaml.Node, path string, item func(n *yaml.Node, path string)) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "want a list, got %s", describe(n))
		return
	}
	for i, c := range n.Content {
		item(c, fmt.Sprintf("%s[%d]", path, i))
	}
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func describe(n *yaml.Node) string {
	switch {
	case isNull(n):
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	default:
		return strconv.Quote(n.Value)
	}
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// Suggest returns the name in known closest to a misspelt one, if one is
// close; of two as close, the first.
func Suggest(name string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if d := editDistance(strings.ToLower(name), k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError turns a yaml.v3 parse error into file:line: message.
func syntaxError(file string, err error) error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: file, Line: line, Msg: m[2]}
	}
	return &Error{File: file, Msg: strings.TrimPrefix(msg, "yaml: ")}
}
