package enrich

import (
	"bytes"
	"unicode/utf8"
)

// The fields of pushWire and of Message by JSON name, indexed by the
// constants below as pushSpans is. TestFastPathFields checks them against
// the structs' tags.
var (
	envelopeFields = [...]string{fieldMessage: "message", fieldSubscription: "subscription",
		fieldDeliveryAttempt: "deliveryAttempt"}
	messageFields = [...]string{fieldData: "data", fieldAttributes: "attributes", fieldMessageID: "messageId",
		fieldPublishTime: "publishTime", fieldOrderingKey: "orderingKey"}
)

const (
	fieldMessage = iota
	fieldSubscription
	fieldDeliveryAttempt
)

const (
	fieldData = iota
	fieldAttributes
	fieldMessageID
	fieldPublishTime
	fieldOrderingKey
)

// pushSpans holds the raw JSON values of a push envelope's fields, found
// by scan, before anything is decoded; each is nil when absent. It is the
// first half of DecodePush's fast path (decode_fast.go).
type pushSpans struct {
	envelope [len(envelopeFields)][]byte // indexed by fieldMessage, ...
	message  [len(messageFields)][]byte  // indexed by fieldData, ...
}

// scan fills p from body in one pass that also checks body's syntax
// exactly as valid does (JSON and UTF-8), except for message.data: that
// string is taken up to the next quote and left for decodeBase64 to
// check. It reports false, for the caller to fall back, on a syntax
// error, a body that is not an object, or a member that encoding/json
// might decode other than by exact name (see field).
func (p *pushSpans) scan(body []byte) bool {
	r, ok := openObject(body, skipSpace(body, 0), 1)
	for ok {
		var key []byte
		if key, ok = r.next(); !ok || key == nil {
			break
		}
		f, known := field(key, envelopeFields[:], p.envelope[:])
		switch {
		case !known:
			return false
		case f == fieldMessage:
			start := r.i
			if r.i, ok = p.scanMessage(body, r.i, r.depth); ok {
				p.envelope[f] = body[start:r.i]
			}
		default:
			var v []byte
			if v, ok = r.value(); ok && f >= 0 {
				p.envelope[f] = v
			}
		}
	}
	return ok && skipSpace(body, r.i) == len(body)
}

// scanMessage fills p.message from the object at d[i], at nesting depth
// depth, and returns the index just past it.
func (p *pushSpans) scanMessage(d []byte, i, depth int) (int, bool) {
	r, ok := openObject(d, i, depth+1)
	for ok {
		var key []byte
		if key, ok = r.next(); !ok || key == nil {
			break
		}
		f, known := field(key, messageFields[:], p.message[:])
		if !known {
			return r.i, false
		}
		var v []byte
		if f == fieldData {
			v, ok = r.quoted()
		} else {
			v, ok = r.value()
		}
		if ok && f >= 0 {
			p.message[f] = v
		}
	}
	return r.i, ok
}

// field returns the index in names of key, a valid raw JSON key, or -1 if
// encoding/json ignores it. known is false when the fast path must fall
// back: the key is escaped, not ASCII or matches a name only when case is
// ignored (see fieldIndex), or it names a field that already has a value
// in values.
func field(key []byte, names []string, values [][]byte) (i int, known bool) {
	i, known = fieldIndex(key[1:len(key)-1], names)
	if known && i >= 0 && values[i] != nil {
		return i, false
	}
	return i, known
}

// fieldIndex returns the index of key, a raw key without its quotes, in
// names, or -1 if encoding/json ignores that key. ok is false when key
// is escaped or not ASCII, or matches a name only when case is ignored.
func fieldIndex(key []byte, names []string) (i int, ok bool) {
	for i, name := range names {
		if string(key) == name {
			return i, true
		}
	}
	for _, c := range key {
		if c == '\\' || c >= utf8.RuneSelf {
			return -1, false
		}
	}
	for _, name := range names {
		if equalFoldASCII(key, name) {
			return -1, false
		}
	}
	return -1, true
}

// equalFoldASCII reports whether the ASCII strings b and s are equal
// under ASCII case folding, which is encoding/json's rule for them.
func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// objectReader reads a JSON object member by member and checks its syntax
// as valid does, so that DecodePush and ParseEvent read their input once:
//
//	r, ok := openObject(d, i, depth)
//	for ok {
//		if key, ok = r.next(); !ok || key == nil { break }
//		v, ok = r.value() // or any reader that sets r.i past the value
//	}
//	// ok: r.i is just past the object
//
// nextMember does the two reads of that loop when the value is read whole.
type objectReader struct {
	d     []byte
	i     int  // the next byte to read
	depth int  // the object's nesting depth, as validContainer counts it
	more  bool // a member was read: a comma comes before the next
}

// openObject starts reading the object at d[i], whose nesting depth is
// depth (1 for the outermost value); false if there is none.
func openObject(d []byte, i, depth int) (objectReader, bool) {
	r := objectReader{d: d, i: i + 1, depth: depth}
	return r, i < len(d) && d[i] == '{' && depth <= maxDepth
}

// next reads the next member's key and the colon after it, and leaves r.i
// at the value. At the end of the object it returns a nil key and leaves
// r.i just past the object. ok is false on a syntax error.
func (r *objectReader) next() (key []byte, ok bool) {
	d, i := r.d, skipSpace(r.d, r.i)
	if i < len(d) && d[i] == '}' {
		r.i = i + 1
		return nil, true
	}
	if r.more { // a comma between members
		if i >= len(d) || d[i] != ',' {
			return nil, false
		}
		i = skipSpace(d, i+1)
	}
	if i >= len(d) || d[i] != '"' {
		return nil, false
	}
	end, ok := validString(d, i)
	if !ok {
		return nil, false
	}
	key = d[i:end]
	if i = skipSpace(d, end); i >= len(d) || d[i] != ':' {
		return nil, false
	}
	r.i, r.more = skipSpace(d, i+1), true
	return key, true
}

// nextMember reads the next member's key and value. At the end of the
// object it returns a nil key and leaves r.i just past the object. ok is
// false on a syntax error.
func (r *objectReader) nextMember() (key, value []byte, ok bool) {
	if key, ok = r.next(); !ok || key == nil {
		return key, nil, ok
	}
	value, ok = r.value()
	return key, value, ok
}

// value reads and checks the value at r.i, and returns it.
func (r *objectReader) value() ([]byte, bool) {
	start := r.i
	end, ok := validValue(r.d, start, r.depth)
	r.i = end
	return r.d[start:end], ok
}

// quoted reads the value at r.i if it is a string with no quote inside:
// a quote, the bytes up to the next quote, and that one. It does not
// check those bytes, and reports false for any other value.
func (r *objectReader) quoted() ([]byte, bool) {
	start := r.i
	if start >= len(r.d) || r.d[start] != '"' {
		return nil, false
	}
	n := bytes.IndexByte(r.d[start+1:], '"')
	if n < 0 {
		return nil, false
	}
	r.i = start + n + 2
	return r.d[start:r.i], true
}
