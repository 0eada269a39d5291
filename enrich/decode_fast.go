package enrich

import (
	"bytes"
	"encoding/base64"
	"strconv"
	"strings"
)

// This file holds DecodePush's fast path. encoding/json spends most of
// its time on reflection and an allocation per string. The fast path reads
// the body once (pushSpans.scan in decode_scan.go checks its syntax as
// valid does while it finds the fields' raw values), then decodes only
// the fields pushWire has, with 4 allocations instead of 20: the data, the
// attributes map, and one block for all the strings.
//
// The fallback rule: decodePushFast reports false, and DecodePush decodes
// the body again with encoding/json, unless all of these hold:
//   - the body is valid JSON and valid UTF-8, and its value is an object;
//   - in the envelope and in its message, every key is either exactly a
//     field's JSON name, or plain ASCII (no escape) and not equal to any
//     field's name when case is ignored: encoding/json matches names
//     case-insensitively, and ignores the other keys as the fast path does;
//   - no field appears twice (encoding/json would merge or overwrite);
//   - every field has the type it needs, so none is null: message is an
//     object, and present; subscription, messageId, orderingKey and
//     publishTime are strings; attributes is an object of strings; data
//     is a string with no escape; deliveryAttempt is an integer literal
//     (no fraction or exponent) that fits in an int;
//   - data is valid base64, and time.Time.UnmarshalJSON accepts publishTime.
//
// What it does not fall back on, it decodes exactly as encoding/json
// does: publishTime with time.Time.UnmarshalJSON on the raw quoted bytes
// (encoding/json's call), data with base64.StdEncoding into a buffer of
// DecodedLen (so "" gives an empty, non-nil slice), an empty attributes
// object as an empty, non-nil map, and escaped strings with encoding/json
// (unquote). Every error is a fallback, so reasons and messages are
// encoding/json's. FuzzDecode and FuzzDecodePush hold DecodePush to
// decodePushJSON; TestDecodePushFastPath shows each rule's cases.

// decodePushFast decodes body as decodePushJSON would when that succeeds
// and body meets the fallback rule above; otherwise it reports false.
func decodePushFast(body []byte) (PushEnvelope, bool) {
	var p pushSpans
	if !p.scan(body) || p.envelope[fieldMessage] == nil {
		return PushEnvelope{}, false
	}
	top, msg := &p.envelope, &p.message
	for _, s := range [...][]byte{top[fieldSubscription], msg[fieldMessageID], msg[fieldOrderingKey],
		msg[fieldPublishTime]} {
		if s != nil && s[0] != '"' {
			return PushEnvelope{}, false
		}
	}
	var env PushEnvelope
	if raw := top[fieldDeliveryAttempt]; raw != nil {
		n, ok := plainInt(raw)
		if !ok {
			return PushEnvelope{}, false
		}
		env.DeliveryAttempt = n
	}
	if raw := msg[fieldPublishTime]; raw != nil && env.Message.PublishTime.UnmarshalJSON(raw) != nil {
		return PushEnvelope{}, false
	}
	if raw := msg[fieldData]; raw != nil {
		data, ok := decodeBase64(raw)
		if !ok {
			return PushEnvelope{}, false
		}
		env.Message.Data = data
	}

	// All the strings, attributes included, share one allocation.
	attrs := msg[fieldAttributes]
	nAttrs, size, canonical, ok := attributesSize(attrs)
	if !ok {
		return PushEnvelope{}, false
	}
	var a stringArena
	a.b.Grow(size + rawSize(top[fieldSubscription]) + rawSize(msg[fieldMessageID]) + rawSize(msg[fieldOrderingKey]))
	env.Subscription = a.str(top[fieldSubscription])
	env.Message.MessageID = a.str(msg[fieldMessageID])
	env.Message.OrderingKey = a.str(msg[fieldOrderingKey])
	if attrs != nil {
		env.Message.Attributes = make(map[string]string, nAttrs)
		for m := newMembers(attrs); m.next(); {
			env.Message.Attributes[a.str(m.key)] = a.str(m.value)
		}
		if canonical {
			env.Message.attributesJSON = bytes.Clone(attrs)
		}
	}
	return env, true
}

// plainInt parses raw, a valid JSON value, if it is an integer literal
// that fits in an int: what encoding/json decodes into an int without
// error, and to the same value.
func plainInt(raw []byte) (int, bool) {
	if c := raw[0]; c != '-' && (c < '0' || c > '9') {
		return 0, false
	}
	if bytes.ContainsAny(raw, ".eE") {
		return 0, false
	}
	n, err := strconv.ParseInt(string(raw), 10, strconv.IntSize)
	return int(n), err == nil
}

// decodeBase64 decodes raw, a JSON string, as encoding/json decodes a
// string into a []byte: into a buffer of DecodedLen, so "" gives an
// empty, non-nil slice. It reports false if raw is not base64.
//
// raw is what objectReader.quoted read: a quote, the bytes up to the next
// quote, and that quote, not checked as a JSON string. Decoding checks
// them: base64 accepts only its alphabet, '=' and CR and LF (which it
// skips), and CR and LF are refused here; so bytes that decode are a
// valid JSON string with no escape, which encoding/json would decode the
// same way. A backslash, for one, is not base64.
func decodeBase64(raw []byte) ([]byte, bool) {
	s := raw[1 : len(raw)-1]
	b := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Decode(b, s)
	return b[:n], err == nil && n == paddedLen(s)
}

// paddedLen returns the number of bytes that s decodes to if it is padded
// base64 with no CR or LF, and -1 if its length cannot be that. Decode
// skips CR and LF; each one it skipped leaves its result shorter than
// this, so comparing the two refuses them without scanning s for them.
func paddedLen(s []byte) int {
	if len(s)%4 != 0 {
		return -1
	}
	n := len(s) / 4 * 3
	for i := len(s) - 1; i >= 0 && s[i] == '='; i-- {
		n--
	}
	return n
}

// attributesSize returns the number of members of attrs, a raw JSON
// object or nil, and the arena bytes of their keys and values. ok is
// false if a value is not a string. canonical reports whether attrs is
// already what attributesJSON makes of the map it decodes to: no escape
// (everything else in a valid JSON string is written as it is), keys in
// increasing order (so no key twice), and no whitespace, which shows as
// bytes beyond the members and their punctuation.
func attributesSize(attrs []byte) (n, size int, canonical, ok bool) {
	if attrs == nil {
		return 0, 0, false, true
	}
	if attrs[0] != '{' {
		return 0, 0, false, false
	}
	canonical = true
	length := len("{}")
	var prev []byte // the previous key, without its quotes
	for m := newMembers(attrs); m.next(); {
		if m.value[0] != '"' {
			return 0, 0, false, false
		}
		kSize, vSize := rawSize(m.key), rawSize(m.value)
		key := m.key[1 : len(m.key)-1]
		canonical = canonical && kSize == len(key) && vSize == len(m.value)-2 &&
			(n == 0 || bytes.Compare(prev, key) < 0)
		if n > 0 {
			length++ // the comma
		}
		length += len(m.key) + len(":") + len(m.value)
		prev = key
		n++
		size += kSize + vSize
	}
	return n, size, canonical && length == len(attrs), true
}

// stringArena makes the envelope's strings as substrings of one
// allocation, sized beforehand with rawSize, instead of one allocation
// each. It copies only the strings the envelope keeps, not the whole body,
// so that a message id kept in a row does not keep the base64 data alive.
type stringArena struct{ b strings.Builder }

// rawSize returns the arena bytes of raw, a JSON string or nil: its length
// without the quotes, or 0 if it is escaped (str unquotes those apart).
func rawSize(raw []byte) int {
	if raw == nil || bytes.IndexByte(raw, '\\') >= 0 {
		return 0
	}
	return len(raw) - 2
}

// str returns the string that raw, a valid JSON string or nil, stands
// for. An escaped string is decoded by encoding/json, the others are
// copied into the arena. Bytes written to a strings.Builder never change,
// so earlier substrings stay valid as the arena grows.
func (a *stringArena) str(raw []byte) string {
	if raw == nil {
		return ""
	}
	if bytes.IndexByte(raw, '\\') >= 0 {
		s, _ := unquote(raw)
		return s
	}
	start := a.b.Len()
	a.b.Write(raw[1 : len(raw)-1])
	return a.b.String()[start:]
}
