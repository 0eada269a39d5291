package enrich

import "unicode/utf8"

// maxDepth is encoding/json's nesting limit, which valid keeps.
const maxDepth = 10000

// valid reports whether d is one JSON value, surrounded by optional
// whitespace, that is also valid UTF-8: json.Valid(d) && utf8.Valid(d) in
// one pass without allocating, several times faster. FuzzDecode holds it
// to that definition.
func valid(d []byte) bool {
	i, ok := validValue(d, skipSpace(d, 0), 0)
	return ok && skipSpace(d, i) == len(d)
}

// validValue checks the value that starts at d[i], at nesting depth depth,
// and returns the index just past it.
func validValue(d []byte, i, depth int) (int, bool) {
	if i >= len(d) {
		return i, false
	}
	switch d[i] {
	case '{':
		return validContainer(d, i, depth, '}')
	case '[':
		return validContainer(d, i, depth, ']')
	case '"':
		return validString(d, i)
	case 't':
		return validLiteral(d, i, "true")
	case 'f':
		return validLiteral(d, i, "false")
	case 'n':
		return validLiteral(d, i, "null")
	}
	return validNumber(d, i)
}

// validContainer checks the object or array that starts at d[i] and ends
// with close.
func validContainer(d []byte, i, depth int, close byte) (int, bool) {
	if depth++; depth > maxDepth {
		return i, false
	}
	i = skipSpace(d, i+1)
	if i < len(d) && d[i] == close {
		return i + 1, true
	}
	for {
		var ok bool
		if close == '}' {
			if i >= len(d) || d[i] != '"' {
				return i, false
			}
			if i, ok = validString(d, i); !ok {
				return i, false
			}
			if i = skipSpace(d, i); i >= len(d) || d[i] != ':' {
				return i, false
			}
			i = skipSpace(d, i+1)
		}
		if i, ok = validValue(d, i, depth); !ok {
			return i, false
		}
		if i = skipSpace(d, i); i >= len(d) {
			return i, false
		}
		switch d[i] {
		case ',':
			i = skipSpace(d, i+1)
		case close:
			return i + 1, true
		default:
			return i, false
		}
	}
}

// plain marks the bytes that stand for themselves in a JSON string: not a
// control character, quote, backslash or the start of a multi-byte UTF-8
// sequence.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// validString checks the string that starts at d[i] == '"'.
func validString(d []byte, i int) (int, bool) {
	for i++; i < len(d); {
		c := d[i]
		switch {
		case plain[c]:
			i++
		case c == '"':
			return i + 1, true
		case c == '\\':
			if i+1 >= len(d) {
				return i, false
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(d) || !isHex(d[i+2]) || !isHex(d[i+3]) || !isHex(d[i+4]) || !isHex(d[i+5]) {
					return i, false
				}
				i += 6
			default:
				return i, false
			}
		case c < 0x20:
			return i, false
		default:
			r, size := utf8.DecodeRune(d[i:])
			if r == utf8.RuneError && size == 1 {
				return i, false
			}
			i += size
		}
	}
	return i, false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// validLiteral checks that d[i:] starts with lit.
func validLiteral(d []byte, i int, lit string) (int, bool) {
	if len(d)-i < len(lit) || string(d[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}

// validNumber checks the number that starts at d[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func validNumber(d []byte, i int) (int, bool) {
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && '1' <= d[i] && d[i] <= '9':
		i = digits(d, i)
	default:
		return i, false
	}
	if i < len(d) && d[i] == '.' {
		start := i + 1
		if i = digits(d, start); i == start {
			return i, false
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		start := i
		if i = digits(d, start); i == start {
			return i, false
		}
	}
	return i, true
}

// digits returns the index of the first non-digit of d at or after i.
func digits(d []byte, i int) int {
	for i < len(d) && '0' <= d[i] && d[i] <= '9' {
		i++
	}
	return i
}
