package sink

import (
	"encoding/binary"
	"encoding/json"

	"github.com/devicestream/enrichevent/enrich"
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
// ' ' at all (see hasSpace), it is copied as it is; otherwise
// enrich.AppendCompact copies it without the whitespace outside its strings.
func appendRawJSON(b []byte, raw json.RawMessage) []byte {
	switch {
	case len(raw) == 0:
		return append(b, "null"...)
	case hasSpace(raw):
		return enrich.AppendCompact(b, raw)
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
