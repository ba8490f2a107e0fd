package luaapi

import "fmt"

// Limits on a script's source, checked before gopher-lua parses it: its
// compiler takes time quadratic in the nesting of blocks (150,000 nested
// `do ... end` took two minutes, all of it during a reload), so a script
// is refused first.
const (
	// MaxScriptBytes caps a script's size.
	MaxScriptBytes = 1 << 20
	// MaxNesting caps how deeply blocks and brackets nest: 200, Lua 5.1's
	// own limit on syntax levels (LUAI_MAXCCALLS).
	MaxNesting = 200
)

// checkSource refuses a script over the limits, naming name:line.
func checkSource(name, src string) error {
	if len(src) > MaxScriptBytes {
		return fmt.Errorf("%s: %d bytes; scripts are limited to %d", name, len(src), MaxScriptBytes)
	}
	line, depth := 1, 0
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == '-' && i+1 < len(src) && src[i+1] == '-':
			i += 2
			if end, lines, ok := longBracket(src, i); ok {
				i, line = end, line+lines
			} else {
				for i < len(src) && src[i] != '\n' {
					i++
				}
			}
		case c == '"' || c == '\'':
			for i++; i < len(src) && src[i] != c && src[i] != '\n'; i++ {
				if src[i] == '\\' {
					if i++; i < len(src) && src[i] == '\n' {
						line++
					}
				}
			}
			i++
		case c == '[':
			if end, lines, ok := longBracket(src, i); ok {
				i, line = end, line+lines
				break
			}
			depth++
			i++
		case c == '(' || c == '{':
			depth++
			i++
		case c == ')' || c == '}' || c == ']':
			depth--
			i++
		case isWordStart(c) || '0' <= c && c <= '9':
			start := i
			for i < len(src) && (isWordStart(src[i]) || '0' <= src[i] && src[i] <= '9') {
				i++
			}
			switch src[start:i] {
			case "function", "if", "do", "repeat":
				depth++
			case "end", "until":
				depth--
			}
		default:
			i++
		}
		if depth > MaxNesting {
			return fmt.Errorf("%s:%d: blocks and brackets nested deeper than %d levels", name, line, MaxNesting)
		}
	}
	return nil
}

func isWordStart(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_'
}

// longBracket reports whether a long bracket ([[, [==[) opens at src[i],
// and if so where it ends (past its close, or the end of src) and how many
// newlines it holds.
func longBracket(src string, i int) (end, lines int, ok bool) {
	if i >= len(src) || src[i] != '[' {
		return 0, 0, false
	}
	j := i + 1
	for j < len(src) && src[j] == '=' {
		j++
	}
	if j >= len(src) || src[j] != '[' {
		return 0, 0, false
	}
	closing := "]" + src[i+1:j] + "]"
	for k := j + 1; k < len(src); k++ {
		switch {
		case src[k] == '\n':
			lines++
		case src[k] == ']' && len(src)-k >= len(closing) && src[k:k+len(closing)] == closing:
			return k + len(closing), lines, true
		}
	}
	return len(src), lines, true
}
