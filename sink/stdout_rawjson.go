package sink

import (
	"encoding/binary"
	"encoding/json"
	"math/bits"
)

// This file writes the JSON columns of a row line (device_metadata,
// payload, attributes). They are trusted: every row comes from
// enrich.BuildRow, whose payload enrich.ParseEvent has validated and whose
// metadata and attributes enrich wrote itself, so they are not validated
// again (encoding/json would, twice: checkValid, then compact). They are
// only compacted, so that a pretty-printed payload stays on one line, and
// for valid JSON the bytes are those encoding/json writes for a
// json.RawMessage without HTML escaping. FuzzCompactJSON holds them to
// json.Compact, FuzzStdoutRow to encoding/json.

// appendRawJSON appends the JSON column raw to b: null when raw is nil or
// empty; otherwise raw, which must hold one valid JSON value, without its
// insignificant whitespace. raw is not validated: for anything else the
// bytes written are unspecified (but it does not panic).
//
// Most columns have no whitespace to remove: when raw holds no byte up to
// ' ' at all (see hasSpace), it is copied as it is; otherwise appendCompact
// copies it without the whitespace outside its strings.
func appendRawJSON(b []byte, raw json.RawMessage) []byte {
	switch {
	case len(raw) == 0:
		return append(b, "null"...)
	case hasSpace(raw):
		return appendCompact(b, raw)
	}
	return append(b, raw...)
}

// hasSpace reports whether src holds a byte up to ' ': JSON's whitespace
// (' ', '\t', '\n', '\r'), a space inside a string or, in text that is not
// valid JSON, another control character. It looks at eight bytes at a time
// with the bit trick "has a byte less than n", (x - 0x01..*n) &^ x & 0x80..
// (Sean Anderson's Bit Twiddling Hacks), which is zero exactly when no
// byte is.
func hasSpace(src []byte) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(src); i += 8 {
		w := binary.LittleEndian.Uint64(src[i:])
		if (w-ones*(' '+1))&^w&highs != 0 {
			return true
		}
	}
	for ; i < len(src); i++ {
		if src[i] <= ' ' {
			return true
		}
	}
	return false
}

// appendCompact appends the JSON text src to dst without the whitespace
// outside its strings: what json.Compact does with valid JSON. Strings
// are copied as they are (see stringEnd).
func appendCompact(dst, src []byte) []byte {
	start := 0 // src[start:i] is yet to be copied
	for i := 0; i < len(src); {
		switch src[i] {
		case '"':
			i = stringEnd(src, i+1)
		case ' ', '\t', '\n', '\r':
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

// isSpace reports whether b is JSON's insignificant whitespace.
func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

// stringEnd returns the index just past the closing quote of the JSON
// string whose contents start at src[i] (len(src) if there is none): the
// first '"' not escaped by a backslash. It looks at eight bytes at a time
// for the next '"' or '\\' (see special).
func stringEnd(src []byte, i int) int {
	for i < len(src) {
		if i+8 <= len(src) {
			m := special(binary.LittleEndian.Uint64(src[i:]))
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) / 8
		}
		switch src[i] {
		case '"':
			return i + 1
		case '\\':
			i += 2 // the escaped byte: '"', '\\' or the start of an escape
		default: // a control character (not valid JSON), or a byte of the tail
			i++
		}
	}
	return len(src)
}

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
