package engine

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// maxDepth bounds the nesting of the values amx skips (fields it does not
// know): the webhook itself nests four levels deep.
const maxDepth = 32

// The notification is decoded by hand rather than with encoding/json, for
// two reasons. It must be deterministic: encoding/json matches keys without
// regard to case and lets the last of two equal keys win, so `"STATUS"`
// after `"status"` would silently change what runs; this decoder rejects a
// duplicate key and a key that differs from a known one only in case. And
// it is on every notification's path: it decodes the webhook's fixed shape
// in one pass, without reflection, several times faster.
//
// Otherwise it reads what encoding/json reads into Message: unknown fields
// are skipped (but must be valid JSON), null leaves a field empty, invalid
// UTF-8 in a string becomes U+FFFD, and times are RFC 3339.

// jsonDecoder reads one JSON document from data.
type jsonDecoder struct {
	data  []byte
	pos   int
	depth int
	// maxAlerts stops the decoding of a notification with more alerts, so
	// that its cost is bounded by what amx would keep.
	maxAlerts int
}

// decodeMessage parses body into m, refusing more than maxAlerts alerts.
func decodeMessage(body []byte, m *Message, maxAlerts int) error {
	d := &jsonDecoder{data: body, maxAlerts: maxAlerts}
	d.space()
	if d.pos < len(d.data) && d.data[d.pos] != '{' {
		return d.want("an object")
	}
	if err := d.object(messageFields, func(field int) error { return m.decodeField(d, field) }); err != nil {
		return err
	}
	if d.space(); d.pos < len(d.data) {
		return d.errorf("%s after the object", d.found())
	}
	return nil
}

// The fields of Message and Alert, in the order of their names below.
var (
	messageFields = []string{"version", "receiver", "status", "alerts", "groupLabels", "commonLabels",
		"commonAnnotations", "externalURL", "groupKey", "truncatedAlerts"}
	alertFields = []string{"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}
)

func (m *Message) decodeField(d *jsonDecoder, field int) (err error) {
	switch field {
	case 0:
		m.Version, err = d.word()
	case 1:
		m.Receiver, err = d.string()
	case 2:
		m.Status, err = d.word()
	case 3:
		m.Alerts, err = d.alerts()
	case 4:
		m.GroupLabels, err = d.stringMap()
	case 5:
		m.CommonLabels, err = d.stringMap()
	case 6:
		m.CommonAnnotations, err = d.stringMap()
	case 7:
		m.ExternalURL, err = d.string()
	case 8:
		m.GroupKey, err = d.string()
	case 9:
		m.TruncatedAlerts, err = d.int()
	}
	return err
}

func (a *Alert) decodeField(d *jsonDecoder, field int) (err error) {
	switch field {
	case 0:
		a.Status, err = d.word()
	case 1:
		a.Labels, err = d.stringMap()
	case 2:
		a.Annotations, err = d.stringMap()
	case 3:
		a.StartsAt, err = d.time()
	case 4:
		a.EndsAt, err = d.time()
	case 5:
		a.GeneratorURL, err = d.string()
	case 6:
		a.Fingerprint, err = d.string()
	}
	return err
}

func (d *jsonDecoder) alerts() ([]Alert, error) {
	if d.null() {
		return nil, nil
	}
	if err := d.open('['); err != nil {
		return nil, err
	}
	alerts := []Alert{}
	err := d.elements(']', func() error {
		if len(alerts) >= d.maxAlerts {
			return fmt.Errorf(`more than %d "alerts" in the notification (max_alerts)`, d.maxAlerts)
		}
		alerts = append(alerts, Alert{})
		a := &alerts[len(alerts)-1]
		if err := d.object(alertFields, func(field int) error { return a.decodeField(d, field) }); err != nil {
			return within(err, fmt.Sprintf("[%d]", len(alerts)-1))
		}
		// Alertmanager identifies an alert by its labels: without any,
		// it is not an alert, and a body of empty ones costs amx more
		// than it costs the sender. Stop at the first.
		if len(a.Labels) == 0 {
			return fmt.Errorf(`alerts[%d]: no "labels": an alert has at least one`, len(alerts)-1)
		}
		return nil
	})
	return alerts, err
}

// object reads an object whose keys are fields: a known key calls value
// with its index, which must read the value; another key's value is
// skipped. A key seen twice, or one that differs from a field only in case,
// is an error.
func (d *jsonDecoder) object(fields []string, value func(field int) error) error {
	if d.null() {
		return nil
	}
	if err := d.open('{'); err != nil {
		return err
	}
	var seen uint64 // fields are few
	var others map[string]bool
	return d.elements('}', func() error {
		at := d.pos
		key, err := d.key()
		if err != nil {
			return err
		}
		field := -1
		for i, f := range fields {
			if f == string(key) {
				field = i
				break
			}
		}
		switch {
		case field >= 0 && seen&(1<<field) != 0:
			return d.errorAt(at, "duplicate key %q", key)
		case field >= 0:
			seen |= 1 << field
			if err := value(field); err != nil {
				return within(err, fields[field])
			}
			return nil
		}
		for _, f := range fields {
			if strings.EqualFold(f, string(key)) {
				return d.errorAt(at, "key %q differs from %q only in case", key, f)
			}
		}
		if others == nil {
			others = map[string]bool{}
		}
		if others[string(key)] {
			return d.errorAt(at, "duplicate key %q", key)
		}
		others[string(key)] = true
		return d.skip()
	})
}

// stringMap reads an object of strings (labels, annotations).
func (d *jsonDecoder) stringMap() (map[string]string, error) {
	if d.null() {
		return nil, nil
	}
	if err := d.open('{'); err != nil {
		return nil, err
	}
	m := map[string]string{}
	err := d.elements('}', func() error {
		at := d.pos
		key, err := d.key()
		if err != nil {
			return err
		}
		name := intern(key)
		if _, dup := m[name]; dup {
			return d.errorAt(at, "duplicate key %q", key)
		}
		if m[name], err = d.string(); err != nil {
			return within(err, strconv.Quote(name))
		}
		return nil
	})
	return m, err
}

// open consumes the opening bracket c of an array or object.
func (d *jsonDecoder) open(c byte) error {
	d.space()
	if d.pos >= len(d.data) || d.data[d.pos] != c {
		return d.want(kind(c))
	}
	if d.depth++; d.depth > maxDepth {
		return d.errorf("nested deeper than %d levels", maxDepth)
	}
	d.pos++
	return nil
}

// elements calls each for every element of the array or object just
// opened, and consumes its end.
func (d *jsonDecoder) elements(end byte, each func() error) error {
	if d.space(); d.pos < len(d.data) && d.data[d.pos] == end {
		d.pos++
		d.depth--
		return nil
	}
	for {
		if d.space(); d.pos >= len(d.data) {
			return d.errorf("unexpected end of input")
		}
		if err := each(); err != nil {
			return err
		}
		if d.space(); d.pos >= len(d.data) {
			return d.errorf("unexpected end of input")
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case end:
			d.pos++
			d.depth--
			return nil
		default:
			return d.want(fmt.Sprintf("',' or '%c'", end))
		}
	}
}

// key reads an object key and its colon.
func (d *jsonDecoder) key() ([]byte, error) {
	d.space()
	if d.pos >= len(d.data) || d.data[d.pos] != '"' {
		return nil, d.want("a key")
	}
	key, err := d.quotedBytes()
	if err != nil {
		return nil, err
	}
	if d.space(); d.pos >= len(d.data) || d.data[d.pos] != ':' {
		return nil, d.want("':' after a key")
	}
	d.pos++
	return key, nil
}

// null consumes a null, if that is what comes next.
func (d *jsonDecoder) null() bool {
	d.space()
	if len(d.data)-d.pos >= 4 && string(d.data[d.pos:d.pos+4]) == "null" {
		d.pos += 4
		return true
	}
	return false
}

// stringBytes reads a string value; null is empty. The bytes may be the
// input's own: the caller copies what it keeps.
func (d *jsonDecoder) stringBytes() ([]byte, error) {
	if d.null() {
		return nil, nil
	}
	if d.pos >= len(d.data) || d.data[d.pos] != '"' {
		return nil, d.typeError("a string")
	}
	return d.quotedBytes()
}

// string reads a string value; null is the empty string. The string
// shares the input's memory (or the buffer unquoting made): the message of
// a large group is its body and little more, not the body and a copy of
// every label and annotation. See Decode for what that asks of callers.
func (d *jsonDecoder) string() (string, error) {
	b, err := d.stringBytes()
	if len(b) == 0 {
		return "", err
	}
	return unsafe.String(unsafe.SliceData(b), len(b)), err
}

// word reads a string value that is mostly one of a few (a status), without
// a copy when it is.
func (d *jsonDecoder) word() (string, error) {
	b, err := d.stringBytes()
	return intern(b), err
}

// common holds the names and words that recur in every notification, so
// decoding them allocates nothing. (Looking every value up costs more than
// copying the ones that miss.)
var common = func() map[string]string {
	m := map[string]string{}
	for _, s := range []string{StatusFiring, StatusResolved, "4",
		"alertname", "instance", "job", "severity", "service", "team", "env", "cluster", "namespace",
		"pod", "container", "node", "device", "mountpoint", "fstype", "summary", "description",
		"runbook_url"} {
		m[s] = s
	}
	return m
}()

// intern returns b as a string, without a copy when it is a common one.
func intern(b []byte) string {
	if s, ok := common[string(b)]; ok {
		return s
	}
	return string(b)
}

// int reads an integer; null is 0.
func (d *jsonDecoder) int() (int, error) {
	if d.null() {
		return 0, nil
	}
	start := d.pos
	if err := d.number(); err != nil {
		return 0, d.typeError("an integer")
	}
	n, err := strconv.Atoi(string(d.data[start:d.pos]))
	if err != nil {
		d.pos = start
		return 0, d.typeError("an integer")
	}
	return n, nil
}

// time reads an RFC 3339 time, as time.Time's UnmarshalJSON does; null is
// the zero time.
func (d *jsonDecoder) time() (time.Time, error) {
	var t time.Time
	if d.null() {
		return t, nil
	}
	if d.pos >= len(d.data) || d.data[d.pos] != '"' {
		return t, d.typeError("an RFC 3339 time")
	}
	start := d.pos
	if _, err := d.quotedBytes(); err != nil {
		return t, err
	}
	// As time.Time's UnmarshalJSON: the bytes between the quotes, escapes
	// and all.
	raw := d.data[start+1 : d.pos-1]
	if err := t.UnmarshalText(raw); err != nil {
		d.pos = start
		return t, d.errorf("want an RFC 3339 time, found %q", raw)
	}
	return t, nil
}

// quotedBytes reads the string that starts at d.pos, a double quote. The
// bytes are the input's own when the string has no escapes: the caller
// copies what it keeps.
func (d *jsonDecoder) quotedBytes() ([]byte, error) {
	d.pos++
	start := d.pos
	// The common case: plain ASCII without escapes.
	for i := start; i < len(d.data); i++ {
		switch c := d.data[i]; {
		case c == '"':
			d.pos = i + 1
			return d.data[start:i], nil
		case c == '\\' || c < ' ' || c >= utf8.RuneSelf:
			return d.unquote(start, i)
		}
	}
	d.pos = len(d.data)
	return nil, d.errorf("unexpected end of input in a string")
}

// unquote reads the rest of a string with escapes or non-ASCII bytes from
// i on; data[start:i] is plain.
func (d *jsonDecoder) unquote(start, i int) ([]byte, error) {
	b := make([]byte, i-start, i-start+16)
	copy(b, d.data[start:i])
	for i < len(d.data) {
		c := d.data[i]
		switch {
		case c == '"':
			d.pos = i + 1
			return b, nil
		case c < ' ':
			d.pos = i
			return nil, d.errorf("control character %#02x in a string", c)
		case c < utf8.RuneSelf && c != '\\':
			b = append(b, c)
			i++
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(d.data[i:])
			b = utf8.AppendRune(b, r) // an invalid byte becomes U+FFFD
			i += size
		default: // a backslash
			if i+1 >= len(d.data) {
				d.pos = len(d.data)
				return nil, d.errorf("unexpected end of input in a string")
			}
			esc := d.data[i+1]
			i += 2
			switch esc {
			case '"', '\\', '/':
				b = append(b, esc)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r, ok := hex4(d.data[i:])
				if !ok {
					d.pos = i - 2
					return nil, d.errorf(`invalid \u escape in a string`)
				}
				i += 4
				if utf16.IsSurrogate(r) {
					// A pair makes one rune; a lone half is U+FFFD.
					r2, ok := rune(0), false
					if len(d.data)-i >= 6 && d.data[i] == '\\' && d.data[i+1] == 'u' {
						r2, ok = hex4(d.data[i+2:])
					}
					if dec := utf16.DecodeRune(r, r2); ok && dec != utf8.RuneError {
						r = dec
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				b = utf8.AppendRune(b, r)
			default:
				d.pos = i - 2
				return nil, d.errorf("invalid escape %q in a string", []byte{'\\', esc})
			}
		}
	}
	d.pos = len(d.data)
	return nil, d.errorf("unexpected end of input in a string")
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// skip reads and discards any value, checking that it is valid JSON.
func (d *jsonDecoder) skip() error {
	d.space()
	if d.pos >= len(d.data) {
		return d.errorf("unexpected end of input")
	}
	switch c := d.data[d.pos]; {
	case c == '"':
		_, err := d.quotedBytes()
		return err
	case c == '{':
		return d.skipContainer('{', '}', true)
	case c == '[':
		return d.skipContainer('[', ']', false)
	case c == '-' || '0' <= c && c <= '9':
		return d.number()
	}
	for _, lit := range []string{"true", "false", "null"} {
		if len(d.data)-d.pos >= len(lit) && string(d.data[d.pos:d.pos+len(lit)]) == lit {
			d.pos += len(lit)
			return nil
		}
	}
	return d.want("a value")
}

func (d *jsonDecoder) skipContainer(open, end byte, keyed bool) error {
	if err := d.open(open); err != nil {
		return err
	}
	return d.elements(end, func() error {
		if keyed {
			if _, err := d.key(); err != nil {
				return err
			}
		}
		return d.skip()
	})
}

// number reads a JSON number.
func (d *jsonDecoder) number() error {
	start, i := d.pos, d.pos
	digits := func() int {
		n := 0
		for i < len(d.data) && '0' <= d.data[i] && d.data[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(d.data) && d.data[i] == '-' {
		i++
	}
	switch {
	case i < len(d.data) && d.data[i] == '0':
		i++
	case digits() == 0:
		return d.errorf("invalid number")
	}
	if i < len(d.data) && d.data[i] == '.' {
		i++
		if digits() == 0 {
			d.pos = start
			return d.errorf("invalid number")
		}
	}
	if i < len(d.data) && (d.data[i] == 'e' || d.data[i] == 'E') {
		i++
		if i < len(d.data) && (d.data[i] == '+' || d.data[i] == '-') {
			i++
		}
		if digits() == 0 {
			d.pos = start
			return d.errorf("invalid number")
		}
	}
	d.pos = i
	return nil
}

func (d *jsonDecoder) space() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// jsonError is what is wrong with a notification's JSON, where: the byte
// offset and, below the top level, the field.
type jsonError struct {
	offset int
	path   string // alerts[0].labels
	msg    string
}

func (e *jsonError) Error() string {
	if e.path == "" {
		return fmt.Sprintf("invalid JSON at byte %d: %s", e.offset, e.msg)
	}
	return fmt.Sprintf("invalid JSON at byte %d: %s: %s", e.offset, e.path, e.msg)
}

func (d *jsonDecoder) errorf(format string, args ...any) error {
	return d.errorAt(d.pos, format, args...)
}

func (d *jsonDecoder) errorAt(offset int, format string, args ...any) error {
	return &jsonError{offset: offset, msg: fmt.Sprintf(format, args...)}
}

// within says that err, from the decoder, happened inside seg, a key or
// an index.
func within(err error, seg string) error {
	e, ok := errors.AsType[*jsonError](err)
	if !ok {
		return err
	}
	switch {
	case e.path == "":
		e.path = seg
	case e.path[0] == '[':
		e.path = seg + e.path
	default:
		e.path = seg + "." + e.path
	}
	return e
}

// typeError is a value of the wrong type for its field.
func (d *jsonDecoder) typeError(what string) error { return d.want(what) }

// want says what should have come next.
func (d *jsonDecoder) want(what string) error {
	if d.pos >= len(d.data) {
		return d.errorf("unexpected end of input")
	}
	return d.errorf("want %s, found %s", what, d.found())
}

// found names what is at d.pos, for an error.
func (d *jsonDecoder) found() string {
	if d.pos >= len(d.data) {
		return "the end of input"
	}
	switch c := d.data[d.pos]; {
	case c == '"':
		return "a string"
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == '-' || '0' <= c && c <= '9':
		return "a number"
	case c == 't' || c == 'f':
		return "a boolean"
	case ' ' < c && c < utf8.RuneSelf:
		return fmt.Sprintf("'%c'", c)
	default:
		return fmt.Sprintf("byte %#02x", c)
	}
}

func kind(c byte) string {
	if c == '{' {
		return "an object"
	}
	return "an array"
}
