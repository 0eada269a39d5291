package enrich

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// jsonStream reads a JSON metadata file one device object at a time: it
// walks the top-level structure itself and cuts out each object, which
// valid then checks, so memory stays one object however big the file.
type jsonStream struct {
	r   *bufio.Reader
	off int64  // bytes consumed, for messages
	buf []byte // the current value
	key []byte // the current key of a keyed object
}

// next consumes and returns the next non-space byte.
func (s *jsonStream) next() (byte, error) {
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			return 0, err
		}
		s.off++
		if !isSpace(c) {
			return c, nil
		}
	}
}

// errorf returns an error located at the current offset.
func (s *jsonStream) errorf(format string, args ...any) error {
	return fmt.Errorf("offset %d: %s", s.off, fmt.Sprintf(format, args...))
}

// unexpected returns the error for byte c (or err) where want was expected.
func (s *jsonStream) unexpected(c byte, err error, want string) error {
	if errors.Is(err, io.EOF) {
		return s.errorf("unexpected end of file, want %s (truncated?)", want)
	}
	if err != nil {
		return err
	}
	return s.errorf("unexpected %q, want %s", c, want)
}

// value reads the rest of a string, object or array whose first byte open
// has been consumed, and checks that it is valid JSON and UTF-8. The result
// is valid until the next call.
func (s *jsonStream) value(open byte) ([]byte, error) {
	start := s.off - 1
	s.buf = append(s.buf[:0], open)
	depth, inString, escaped := 1, open == '"', false
	for {
		chunk, err := s.r.Peek(max(s.r.Buffered(), 1))
		end := -1
		for i, c := range chunk {
			switch {
			case escaped:
				escaped = false
			case inString:
				escaped = c == '\\'
				inString = c != '"'
			case c == '"':
				inString = true
				continue
			case c == '{' || c == '[':
				depth++
				continue
			case c == '}' || c == ']':
				depth--
			default:
				continue
			}
			if depth == 0 || open == '"' && !inString {
				end = i + 1
				break
			}
		}
		if end >= 0 {
			chunk = chunk[:end]
		}
		s.buf = append(s.buf, chunk...)
		n, _ := s.r.Discard(len(chunk))
		s.off += int64(n)
		switch {
		case end >= 0:
			if !valid(s.buf) {
				return nil, fmt.Errorf("offset %d: invalid JSON %s", start, kindOf(open))
			}
			return s.buf, nil
		case errors.Is(err, io.EOF):
			return nil, fmt.Errorf("offset %d: unexpected end of file in a JSON %s (truncated?)", start, kindOf(open))
		case err != nil:
			return nil, err
		}
	}
}

// end checks that nothing but whitespace follows the top-level value.
func (s *jsonStream) end() error {
	c, err := s.next()
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.errorf("unexpected %q after the top-level value", c)
}

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
		var key []byte
		if key, err = s.value(c); err != nil {
			return err
		}
		s.key = append(s.key[:0], key...)
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

// device reads the device object whose '{' has been consumed and stores
// it; key is its raw key in a keyed object, else nil.
func (s *jsonStream) device(open byte, key []byte, b *builder) error {
	start := s.off - 1
	obj, err := s.value(open)
	if err != nil {
		return err
	}
	if err := b.addJSON(obj, key); err != nil {
		return fmt.Errorf("offset %d: %w", start, err)
	}
	return nil
}

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

// deviceIDKey is the key of the id in a JSON device's Metadata.
var deviceIDKey = []byte(`"device_id"`)

// addJSON stores the device of a JSON object, valid JSON. key is its raw
// key in a keyed object, or nil when the id is the object's device_id.
func (b *builder) addJSON(obj, key []byte) error {
	b.stats.Rows++
	id := key
	if id == nil {
		for m := newMembers(obj); m.next(); {
			if keyRole(m.key) == roleID {
				id = m.value
			}
		}
	}
	blank, err := blankID(id)
	if err != nil {
		return err
	}
	if blank {
		b.stats.Blank++
		return nil
	}
	b.begin()
	b.jsonText(roleID, b.member(deviceIDKey), id)
	b.buf = append(b.buf, id...)
	for m := newMembers(obj); m.next(); {
		r := keyRole(m.key)
		if r == roleID {
			continue
		}
		off := b.member(m.key)
		b.buf = appendCompact(b.buf, m.value)
		if r != roleNone {
			b.jsonText(r, off, m.value)
		}
	}
	b.commit()
	return nil
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
