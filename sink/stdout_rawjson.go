package sink

import (
	"encoding/binary"
	"encoding/json"
	"math/bits"
)

// This file writes the JSON columns of a row line (device_metadata,
// payload, attributes) as encoding/json writes a json.RawMessage without
// HTML escaping: nil as null, anything else checked to be one JSON value
// and compacted, so that a payload with newlines stays on one line.
// encoding/json runs its byte-at-a-time state machine twice for that
// (checkValid, then appendCompact). Here the recursive validator accepts
// exactly what json.Valid accepts (invalid UTF-8 inside strings included,
// and at most maxNestingDepth nested arrays and objects) and notes whether
// it skipped whitespace; only then does appendCompact copy the text without
// it, otherwise the text is copied as it is. FuzzRawJSON holds them to
// json.Valid and json.Compact, FuzzStdoutRow to encoding/json.

// maxNestingDepth is encoding/json's nesting limit: a value nested deeper
// is invalid.
const maxNestingDepth = 10000

// appendRawJSON appends raw as encoding/json encodes a json.RawMessage
// (without HTML escaping) and reports ok && whether encoding/json accepts
// it. When it reports false, b is to be discarded. An empty raw that is not
// nil is not valid JSON, as for encoding/json.
func appendRawJSON(b []byte, raw json.RawMessage, ok bool) ([]byte, bool) {
	if raw == nil {
		return append(b, "null"...), ok
	}
	v := validator{src: raw}
	i, valid := v.value(0, 0)
	if i, _ = v.peek(i); !valid || i != len(raw) {
		return b, false
	}
	if v.spaced {
		return appendCompact(b, raw), ok
	}
	return append(b, raw...), ok
}

// validator checks the JSON text src. Each method checks the value or
// token that starts at index i of src, after optional whitespace, and
// returns the index just past it and whether it is valid.
type validator struct {
	src    []byte
	spaced bool // whether whitespace was skipped
}

// peek returns the index of the first byte at or after i that is not
// whitespace, and that byte (0 at the end of src).
func (v *validator) peek(i int) (int, byte) {
	d := v.src
	for ; i < len(d); i++ {
		if b := d[i]; b > ' ' || !isSpace(b) {
			return i, b
		}
		v.spaced = true
	}
	return i, 0
}

// isSpace reports whether b is JSON's insignificant whitespace.
func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

// value checks the value at src[i], nested in depth arrays and objects.
func (v *validator) value(i, depth int) (int, bool) {
	i, b := v.peek(i)
	switch b {
	case '"':
		return v.string(i)
	case '{':
		return v.object(i, depth)
	case '[':
		return v.array(i, depth)
	case 't':
		return v.literal(i, "true")
	case 'f':
		return v.literal(i, "false")
	case 'n':
		return v.literal(i, "null")
	}
	return v.number(i)
}

// object checks the object at src[i] == '{'.
func (v *validator) object(i, depth int) (int, bool) {
	if depth++; depth > maxNestingDepth {
		return i, false
	}
	i, b := v.peek(i + 1)
	if b == '}' {
		return i + 1, true
	}
	for {
		var ok bool
		if b != '"' {
			return i, false
		}
		if i, ok = v.string(i); !ok {
			return i, false
		}
		if i, b = v.peek(i); b != ':' {
			return i, false
		}
		if i, ok = v.value(i+1, depth); !ok {
			return i, false
		}
		switch i, b = v.peek(i); b {
		case ',':
			i, b = v.peek(i + 1)
		case '}':
			return i + 1, true
		default:
			return i, false
		}
	}
}

// array checks the array at src[i] == '['.
func (v *validator) array(i, depth int) (int, bool) {
	if depth++; depth > maxNestingDepth {
		return i, false
	}
	i, b := v.peek(i + 1)
	if b == ']' {
		return i + 1, true
	}
	for {
		var ok bool
		if i, ok = v.value(i, depth); !ok {
			return i, false
		}
		switch i, b = v.peek(i); b {
		case ',':
			i++
		case ']':
			return i + 1, true
		default:
			return i, false
		}
	}
}

// string checks the string at src[i] == '"'. It looks at eight bytes at a
// time for the next one that is not plain (see special), and byte by byte
// in the last seven bytes of src.
func (v *validator) string(i int) (int, bool) {
	d := v.src
	for i++; ; {
		for i+8 <= len(d) {
			if m := special(binary.LittleEndian.Uint64(d[i:])); m != 0 {
				i += bits.TrailingZeros64(m) / 8
				break
			}
			i += 8
		}
		for i < len(d) && inString[d[i]] {
			i++
		}
		if i >= len(d) {
			return i, false
		}
		switch d[i] {
		case '"':
			return i + 1, true
		case '\\':
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
		default: // a control character
			return i, false
		}
	}
}

// inString marks the bytes that stand for themselves inside a JSON string
// for json.Valid: anything but a control character, '"' and '\\' (bytes
// of invalid UTF-8 included).
var inString = func() (t [256]bool) {
	for c := 0x20; c < len(t); c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// special returns the high bits of the bytes of the little-endian word w
// that are a control character, '"' or '\\': the bytes that end a run of
// plain bytes in a JSON string. It is the bit trick "has a zero byte",
// (x - 0x01..) &^ x & 0x80.., and its variant "has a byte less than n"
// (Sean Anderson's Bit Twiddling Hacks). Their result can flag a byte
// above a flagged one wrongly (a borrow), never one below it, so the
// lowest flag (bits.TrailingZeros64(m) / 8) is the first such byte, and 0
// means none.
func special(w uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	quote, backslash := w^(ones*'"'), w^(ones*'\\')
	return ((w-ones*0x20)&^w | (quote-ones)&^quote | (backslash-ones)&^backslash) & highs
}

func isHex(b byte) bool {
	return '0' <= b && b <= '9' || 'a' <= b && b <= 'f' || 'A' <= b && b <= 'F'
}

// literal checks that src[i:] starts with lit.
func (v *validator) literal(i int, lit string) (int, bool) {
	d := v.src
	if len(d)-i < len(lit) || string(d[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}

// number checks the number at src[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (v *validator) number(i int) (int, bool) {
	d := v.src
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && '1' <= d[i] && d[i] <= '9':
		i = digits(d, i+1)
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

// appendCompact appends the valid JSON text src to dst without its
// insignificant whitespace: what json.Compact does with valid JSON.
func appendCompact(dst, src []byte) []byte {
	start := 0
	for i := 0; i < len(src); {
		switch b := src[i]; {
		case b == '"':
			i = stringEnd(src, i)
		case isSpace(b):
			dst = append(dst, src[start:i]...)
			for i++; i < len(src) && isSpace(src[i]); i++ {
			}
			start = i
		default:
			i++
		}
	}
	return append(dst, src[start:]...)
}

// stringEnd returns the index just past the valid JSON string at src[i].
func stringEnd(src []byte, i int) int {
	for i++; i < len(src); i++ {
		switch src[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}
