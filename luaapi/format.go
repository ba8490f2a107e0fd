package luaapi

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// strFormat is string.format as Lua 5.1's lstrlib reads its format (a test
// compares the two): flags from "-+ #0", a width and a precision of at most
// two digits each, and one of the conversions c d i o u x X e E f g G q s.
// gopher-lua hands the format to Go's fmt instead, which reads more than
// Lua does: "%[1]s" repeated reused one argument a thousand times, past any
// check of the arguments' sizes. Here the result's size is known, and
// refused past maxRep, before anything is built.
func strFormat(L *lua.LState) int {
	f := L.CheckString(1)
	var pieces []formatPiece
	size, arg := 0, 1
	for i := 0; i < len(f); {
		j := strings.IndexByte(f[i:], '%')
		if j < 0 {
			j = len(f) - i
		}
		if j > 0 {
			pieces = append(pieces, formatPiece{text: f[i : i+j]})
			size += j
			i += j
			continue
		}
		if i++; i < len(f) && f[i] == '%' {
			pieces = append(pieces, formatPiece{text: "%"})
			size++
			i++
			continue
		}
		spec, conv, end := formatSpec(L, f, i)
		i = end
		arg++
		p, n := formatArg(L, arg, spec, conv)
		pieces = append(pieces, p)
		if size += n; size > maxRep {
			L.RaiseError("string.format: result longer than %d bytes", maxRep)
		}
	}
	var b strings.Builder
	b.Grow(size)
	for _, p := range pieces {
		if p.spec == "" {
			b.WriteString(p.text)
		} else {
			fmt.Fprintf(&b, p.spec, p.arg)
		}
	}
	L.Push(lua.LString(b.String()))
	return 1
}

// formatSpec reads the flags, width and precision of a conversion starting
// at f[i], just past its '%', and returns them with the conversion's
// character and the index past it.
func formatSpec(L *lua.LState, f string, i int) (spec formatFlags, conv byte, end int) {
	start := i
	for i < len(f) && strings.IndexByte("-+ #0", f[i]) >= 0 {
		i++
	}
	if i-start > 5 {
		L.RaiseError("invalid format (repeated flags)")
	}
	spec.flags = f[start:i]
	digits := func() int {
		from := i
		for i < len(f) && '0' <= f[i] && f[i] <= '9' {
			i++
		}
		if i-from > 2 {
			L.RaiseError("invalid format (width or precision too long)")
		}
		n, _ := strconv.Atoi(f[from:i])
		return n
	}
	spec.width, spec.precision = digits(), -1
	if i < len(f) && f[i] == '.' {
		i++
		spec.precision = digits()
	}
	if i >= len(f) {
		L.RaiseError("invalid option '%%' to 'format'")
	}
	return spec, f[i], i + 1
}

// formatPiece is a part of string.format's result: literal text, or an
// argument and the Go format that renders it.
type formatPiece struct {
	spec string // empty for text
	text string
	arg  any
}

// formatFlags are a conversion's flags, width and precision (-1: none).
type formatFlags struct {
	flags            string
	width, precision int
}

// verb is the Go format of the conversion with these flags.
func (s formatFlags) verb(conv byte) string {
	v := "%" + s.flags
	if s.width > 0 {
		v += strconv.Itoa(s.width)
	}
	if s.precision >= 0 {
		v += "." + strconv.Itoa(s.precision)
	}
	return v + string(conv)
}

// integer renders a C integer conversion: Go's fmt differs in the
// details (a sign on unsigned conversions, the 0x of zero, zero padding
// with a precision).
func (s formatFlags) integer(conv byte, v int64) string {
	var digits, prefix string
	switch conv {
	case 'd', 'i':
		u := uint64(v)
		switch {
		case v < 0:
			prefix, u = "-", -u
		case strings.Contains(s.flags, "+"):
			prefix = "+"
		case strings.Contains(s.flags, " "):
			prefix = " "
		}
		digits = strconv.FormatUint(u, 10)
	case 'u':
		digits = strconv.FormatUint(uint64(v), 10)
	case 'o':
		digits = strconv.FormatUint(uint64(v), 8)
	case 'x', 'X':
		digits = strconv.FormatUint(uint64(v), 16)
		if strings.Contains(s.flags, "#") && v != 0 {
			prefix = "0x"
		}
		if conv == 'X' {
			digits, prefix = strings.ToUpper(digits), strings.ToUpper(prefix)
		}
	}
	switch {
	case s.precision == 0 && v == 0:
		digits = ""
	case len(digits) < s.precision:
		digits = strings.Repeat("0", s.precision-len(digits)) + digits
	}
	if conv == 'o' && strings.Contains(s.flags, "#") && !strings.HasPrefix(digits, "0") {
		digits = "0" + digits
	}
	if n := s.width - len(prefix) - len(digits); n > 0 && s.precision < 0 &&
		strings.Contains(s.flags, "0") && !strings.Contains(s.flags, "-") {
		digits = strings.Repeat("0", n) + digits
	}
	return s.pad(prefix + digits)
}

// pad pads s to the width with spaces, counting bytes as C does (Go's fmt
// counts runes).
func (s formatFlags) pad(text string) string {
	if len(text) >= s.width {
		return text
	}
	fill := strings.Repeat(" ", s.width-len(text))
	if strings.Contains(s.flags, "-") {
		return text + fill
	}
	return fill + text
}

// formatArg reads argument n for a conversion, and returns the piece that
// renders it and the most bytes that piece can take.
func formatArg(L *lua.LState, n int, spec formatFlags, conv byte) (p formatPiece, size int) {
	// A number takes at most its digits (309 before the point for the
	// largest double, 99 after), a sign and an exponent; padding takes
	// the width.
	const numberSize = 420
	switch conv {
	case 'c':
		p.text = spec.pad(string([]byte{byte(formatInt(float64(L.CheckNumber(n))))}))
		return p, len(p.text)
	case 'd', 'i':
		p.text = spec.integer(conv, formatInt(float64(L.CheckNumber(n))))
		return p, len(p.text)
	case 'o', 'u', 'x', 'X':
		p.text = spec.integer(conv, int64(formatUint(float64(L.CheckNumber(n)))))
		return p, len(p.text)
	case 'e', 'E', 'f', 'g', 'G':
		x := float64(L.CheckNumber(n))
		if math.IsInf(x, 0) || math.IsNaN(x) {
			// C prints inf and nan where Go prints +Inf and NaN.
			s := "inf"
			if math.IsNaN(x) {
				s = "nan"
			}
			switch {
			case math.Signbit(x):
				s = "-" + s
			case strings.Contains(spec.flags, "+"):
				s = "+" + s
			case strings.Contains(spec.flags, " "):
				s = " " + s
			}
			if conv == 'E' || conv == 'G' {
				s = strings.ToUpper(s)
			}
			p.text = spec.pad(s)
			return p, len(p.text)
		}
		if spec.precision < 0 {
			spec.precision = 6 // C's default; Go's %g would print the shortest
		}
		p.spec, p.arg = spec.verb(conv), x
		return p, numberSize + spec.width
	case 'q':
		p.text = quoteLua(L.CheckString(n))
		return p, len(p.text)
	case 's':
		s := L.CheckString(n)
		if spec.precision < 0 && len(s) >= 100 {
			// Lua 5.1 adds a long string as it is, ignoring the width.
			p.text = s
			return p, len(s)
		}
		if spec.precision >= 0 && len(s) > spec.precision {
			s = s[:spec.precision]
		}
		p.text = spec.pad(s)
		return p, len(p.text)
	}
	L.RaiseError("invalid option '%%%c' to 'format'", conv)
	return p, 0
}

// formatInt is a number as Lua 5.1's cast to a C long makes it on amd64:
// truncated toward zero, and the most negative long when out of range.
func formatInt(f float64) int64 {
	if math.IsNaN(f) || f >= 1<<63 || f < -(1<<63) {
		return math.MinInt64
	}
	return int64(f)
}

// formatUint is a number as Lua 5.1's cast to a C unsigned long makes it
// on amd64, for %o, %u, %x and %X: what is past a long's range goes
// through a long after subtracting 2^63.
func formatUint(f float64) uint64 {
	if f >= 1<<63 {
		return uint64(formatInt(f-(1<<63))) ^ 1<<63
	}
	return uint64(formatInt(f))
}

// quoteLua is %q: the string between double quotes, with the quote,
// backslash, newline, carriage return and NUL escaped as Lua 5.1 does.
func quoteLua(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\', '\n':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\r':
			b.WriteString(`\r`)
		case 0:
			b.WriteString(`\000`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
