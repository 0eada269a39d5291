package enrich

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// This file holds the small JSON helpers of the hot path and the metadata
// parser. The scanners work on text that valid (valid.go) has already
// accepted, so they only find boundaries and never judge syntax;
// FuzzDecode and FuzzParseMetadata check them against encoding/json.

// isSpace reports whether c is JSON insignificant whitespace.
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// skipSpace returns the index of the first non-space byte of d at or after i.
func skipSpace(d []byte, i int) int {
	for i < len(d) && isSpace(d[i]) {
		i++
	}
	return i
}

// stringEnd returns the index just past the string that starts at d[i] == '"'.
func stringEnd(d []byte, i int) int {
	for i++; i < len(d); i++ {
		switch d[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(d)
}

// valueEnd returns the index just past the value that starts at d[i].
func valueEnd(d []byte, i int) int {
	switch d[i] {
	case '"':
		return stringEnd(d, i)
	case '{', '[':
		depth := 0
		for ; i < len(d); i++ {
			switch d[i] {
			case '"':
				i = stringEnd(d, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return len(d)
	}
	for ; i < len(d); i++ {
		switch d[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
	}
	return len(d)
}

// members iterates over the members of a valid JSON object:
//
//	for m := newMembers(obj); m.next(); { use(m.key, m.value) }
//
// key is the raw key with its quotes, value the raw value.
type members struct {
	d          []byte
	i          int
	key, value []byte
}

// newMembers starts an iteration over obj, valid JSON whose first non-space
// byte is '{'.
func newMembers(obj []byte) members {
	return members{d: obj, i: skipSpace(obj, 0) + 1}
}

// next advances to the next member and reports whether there is one.
func (m *members) next() bool {
	d := m.d
	i := skipSpace(d, m.i)
	if i < len(d) && d[i] == ',' {
		i = skipSpace(d, i+1)
	}
	if i >= len(d) || d[i] != '"' {
		return false
	}
	end := stringEnd(d, i)
	m.key = d[i:end]
	i = skipSpace(d, skipSpace(d, end)+1) // past ':'
	end = valueEnd(d, i)
	m.value = d[i:end]
	m.i = end
	return true
}

// keyIs reports whether the raw JSON string key decodes to name. Every
// escape is longer than the bytes it stands for, so a key no longer than
// name decodes to name only if it is name: most keys are told apart
// without looking for an escape.
func keyIs(key []byte, name string) bool {
	inner := key[1 : len(key)-1]
	if len(inner) <= len(name) || bytes.IndexByte(inner, '\\') < 0 {
		return string(inner) == name
	}
	s, ok := unquote(key)
	return ok && s == name
}

// unquote decodes the raw JSON string s, which is valid UTF-8.
func unquote(s []byte) (string, bool) {
	inner := s[1 : len(s)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner), true
	}
	var out string
	err := json.Unmarshal(s, &out)
	return out, err == nil
}

// kindOf names the kind of the JSON value that starts with c, for messages.
func kindOf(c byte) string {
	switch c {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

// AppendCompact appends the JSON text v to dst without the insignificant
// whitespace outside its strings: what json.Compact does with valid JSON.
// v is not validated: for text that is not valid JSON the bytes appended
// are unspecified, but it does not panic. Runs without whitespace are
// copied whole. The metadata parser uses it for device objects, and
// sink's stdout rows for their JSON columns.
func AppendCompact(dst, v []byte) []byte {
	if n := len(v); n > 0 && v[0] != '{' && v[0] != '[' && !isSpace(v[0]) && !isSpace(v[n-1]) {
		return append(dst, v...) // a scalar with nothing around it: no whitespace outside strings
	}
	start := 0 // v[start:i] is yet to be copied
	for i := 0; i < len(v); {
		switch v[i] {
		case '"':
			i = stringEnd(v, i)
		case ' ', '\t', '\n', '\r':
			dst = append(dst, v[start:i]...)
			i = skipSpace(v, i)
			start = i
		default:
			i++
		}
	}
	return append(dst, v[start:]...)
}

const hexDigits = "0123456789abcdef"

// appendString appends s to dst as a JSON string and reports whether s
// appears verbatim between the quotes (nothing escaped or replaced).
// Invalid UTF-8 becomes U+FFFD, as encoding/json does.
func appendString(dst []byte, s string) ([]byte, bool) {
	dst = append(dst, '"')
	dst, verbatim := appendStringContent(dst, s)
	return append(dst, '"'), verbatim
}

// appendStringContent is appendString without the quotes.
func appendStringContent(dst []byte, s string) ([]byte, bool) {
	verbatim := true
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if plain[c] {
			i++
			continue
		}
		size := 1
		if c >= utf8.RuneSelf {
			var r rune
			if r, size = utf8.DecodeRuneInString(s[i:]); r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			if c < 0x20 {
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			} else {
				dst = append(dst, `\ufffd`...)
			}
		}
		verbatim = false
		i += size
		start = i
	}
	return append(dst, s[start:]...), verbatim
}
