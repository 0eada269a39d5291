package enrich

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// parseJSON reads an object keyed by device id, or an array of device
// objects.
func parseJSON(s *jsonStream, b *builder) error {
	c, err := s.next()
	switch {
	case errors.Is(err, io.EOF):
		return nil // an empty file: no devices
	case c == '[':
		err = parseArray(s, b)
	case c == '{':
		err = parseKeyed(s, b)
	default:
		return s.unexpected(c, err, "an object or an array")
	}
	if err != nil {
		return err
	}
	return s.end()
}

// parseArray reads the elements of an array whose '[' has been consumed.
func parseArray(s *jsonStream, b *builder) error {
	c, err := s.next()
	if c == ']' && err == nil {
		return nil
	}
	for {
		if c != '{' || err != nil {
			return s.unexpected(c, err, "a device object")
		}
		if err = s.device(c, nil, b); err != nil {
			return err
		}
		if c, err = s.next(); c == ']' && err == nil {
			return nil
		}
		if c != ',' || err != nil {
			return s.unexpected(c, err, "',' or ']'")
		}
		c, err = s.next()
	}
}

// parseKeyed reads the members of an object keyed by device id whose '{'
// has been consumed.
func parseKeyed(s *jsonStream, b *builder) error {
	c, err := s.next()
	if c == '}' && err == nil {
		return nil
	}
	for {
		if c != '"' || err != nil {
			return s.unexpected(c, err, "a device id")
		}
		if err = s.readKey(c); err != nil {
			return err
		}
		if c, err = s.next(); c != ':' || err != nil {
			return s.unexpected(c, err, "':'")
		}
		if c, err = s.next(); c != '{' || err != nil {
			return s.unexpected(c, err, "a device object")
		}
		if err = s.device(c, s.key, b); err != nil {
			return err
		}
		if c, err = s.next(); c == '}' && err == nil {
			return nil
		}
		if c != ',' || err != nil {
			return s.unexpected(c, err, "',' or '}'")
		}
		c, err = s.next()
	}
}

// readKey reads into s.key the rest of a key whose '"' has been consumed,
// and checks it. A key that is whole in the reader's buffer is read there,
// without value's copy.
func (s *jsonStream) readKey(open byte) error {
	if s.unread() {
		data, _ := s.r.Peek(s.r.Buffered())
		if end, ok := validString(data, 0); ok {
			s.key = append(s.key[:0], data[:end]...)
			s.discard(end)
			return nil
		}
		s.next() // the '"' again
	}
	key, err := s.value(open)
	s.key = append(s.key[:0], key...)
	return err
}

// device reads the device object whose '{' has been consumed and stores
// it; key is its raw key in a keyed object, else nil.
//
// An object that is whole in the reader's buffer, as nearly all are, is
// read there, in one pass: addJSON checks it as it reads it. One that
// addJSON refuses there, because it goes on past the buffer or is invalid,
// is cut out by split and read again, which tells the two apart.
func (s *jsonStream) device(open byte, key []byte, b *builder) error {
	start := s.off - 1
	if s.unread() {
		if s.r.Buffered() < minBuffered {
			s.r.Peek(s.r.Size()) // fill the buffer; an error shows below
		}
		data, _ := s.r.Peek(s.r.Buffered())
		end, err := b.addJSON(data, key)
		if !errors.Is(err, errInvalidObject) {
			s.discard(end)
			if err != nil {
				return fmt.Errorf("offset %d: %w", start, err)
			}
			return nil
		}
		b.undo()
		s.next() // the '{' again
	}
	obj, err := s.split(open)
	if err != nil {
		return err
	}
	switch end, err := b.addJSON(obj, key); {
	case (errors.Is(err, errInvalidObject) || end != len(obj)) && valid(obj):
		return fmt.Errorf("offset %d: device object nested deeper than %d levels, the most BigQuery's JSON type (device_metadata) takes", start, maxMetadataDepth)
	case errors.Is(err, errInvalidObject) || end != len(obj):
		return invalidJSON(start, open)
	case err != nil:
		return fmt.Errorf("offset %d: %w", start, err)
	}
	return nil
}

// minBuffered is the least that device wants buffered before it reads an
// object in the buffer: with less, it fills the buffer first, so that few
// objects go on past it.
const minBuffered = 4 << 10

// parseNDJSON reads device objects separated by whitespace (newlines).
func parseNDJSON(s *jsonStream, b *builder) error {
	for {
		c, err := s.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if c != '{' || err != nil {
			return s.unexpected(c, err, "a device object")
		}
		if err = s.device(c, nil, b); err != nil {
			return err
		}
	}
}

// deviceIDKey is the key of the id in the Metadata of a device from an
// object keyed by id.
var deviceIDKey = []byte(`"device_id"`)

// errInvalidObject is addJSON's error for an object that is not valid JSON.
var errInvalidObject = errors.New("invalid JSON object")

// maxMetadataDepth is how deep a device object may nest: its members go to
// the row's device_metadata, a BigQuery JSON column, which takes at most
// 500 levels. A deeper device would turn every event of that device into an
// error record, so its file is refused instead.
const maxMetadataDepth = 500

// deviceDepth is the nesting depth addJSON gives a device object, so that
// the validator's limit (maxDepth) falls maxMetadataDepth levels below it.
const deviceDepth = maxDepth - maxMetadataDepth + 1

// addJSON stores the device of the JSON object that starts at data[0]
// == '{', and returns the index just past it; bytes after it are ignored.
// The object is not yet checked: addJSON checks it as valid does while it
// reads its members, in one pass, and returns errInvalidObject if it is not
// valid JSON and UTF-8 or ends past data; the record it began must then be
// dropped with undo. key is the object's raw key in a keyed object, already
// checked, or nil when the id is the object's device_id.
func (b *builder) addJSON(data, key []byte) (end int, err error) {
	b.stats.Rows++
	b.begin()
	buf := b.buf // see member
	id := key
	if key != nil {
		buf = member(buf, b.start, deviceIDKey)
		b.jsonText(roleID, len(buf), key)
		buf = append(buf, key...)
	}
	r, ok := openObject(data, 0, deviceDepth)
	for ok {
		var k, v []byte
		if k, v, ok = r.nextMember(); !ok || k == nil {
			break
		}
		role := keyRole(k)
		if role == roleID && key != nil {
			continue // the key is the id
		}
		buf = member(buf, b.start, k)
		if role != roleNone {
			b.jsonText(role, len(buf), v)
		}
		if role == roleID {
			id = v
		}
		buf = AppendCompact(buf, v)
	}
	b.buf = buf
	if !ok {
		return r.i, errInvalidObject
	}
	blank, err := blankID(id)
	if blank || err != nil {
		b.buf = b.buf[:b.start]
		b.stats.Blank++
		return r.i, err
	}
	return r.i, b.commit()
}

// undo drops the record that addJSON began and refused.
func (b *builder) undo() {
	b.buf = b.buf[:b.start]
	b.stats.Rows--
}

// keyRole returns the role of a raw JSON key.
func keyRole(key []byte) role {
	if bytes.IndexByte(key, '\\') < 0 {
		return roleOf(key[1 : len(key)-1])
	}
	s, _ := unquote(key)
	return roleOf(s)
}

// blankID reports whether the raw id value is absent, null or a blank
// string. Ids that are neither strings nor numbers are an error.
func blankID(id []byte) (bool, error) {
	if id == nil {
		return true, nil
	}
	switch id[0] {
	case 'n':
		return true, nil
	case '"':
		if bytes.IndexByte(id, '\\') < 0 {
			return len(bytes.TrimSpace(id[1:len(id)-1])) == 0, nil
		}
		s, _ := unquote(id)
		return strings.TrimSpace(s) == "", nil
	case 't', 'f', '{', '[':
		return false, fmt.Errorf("device id is a JSON %s, want a string or number", kindOf(id[0]))
	}
	return false, nil
}

// jsonText sets field r to the text of raw JSON value v, written at
// buf[off:]: a string's contents or a number's literal. Other kinds have no
// text.
func (b *builder) jsonText(r role, off int, v []byte) {
	switch v[0] {
	case '"':
		if bytes.IndexByte(v, '\\') < 0 {
			b.setSpan(r, off+1, len(v)-2)
		} else {
			s, _ := unquote(v)
			b.setText(r, s)
		}
	case 't', 'f', 'n', '{', '[':
	default:
		b.setSpan(r, off, len(v))
	}
}
