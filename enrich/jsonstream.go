package enrich

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// jsonStream reads a JSON metadata file one device object at a time: it
// walks the top-level structure itself and cuts out each object, which
// builder.addJSON then checks as it reads it, so memory stays one object
// however big the file.
type jsonStream struct {
	r   *bufio.Reader
	off int64  // bytes consumed, for messages
	buf []byte // the current value
	key []byte // the current key of a keyed object
}

// next consumes and returns the next non-space byte. It skips the spaces
// in the buffer at once, and reads that byte with ReadByte, so that
// UnreadByte can put it back.
func (s *jsonStream) next() (byte, error) {
	for {
		spaces, _ := s.r.Peek(s.r.Buffered())
		s.discard(skipSpace(spaces, 0))
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

// discard consumes the next n buffered bytes.
func (s *jsonStream) discard(n int) {
	n, _ = s.r.Discard(n)
	s.off += int64(n)
}

// unread puts back the byte that next returned, so that the value it
// starts can be read in the buffer, and reports whether it could; next
// consumes it again.
func (s *jsonStream) unread() bool {
	if s.r.UnreadByte() != nil {
		return false
	}
	s.off--
	return true
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
	v, err := s.split(open)
	if err == nil && !valid(v) {
		return nil, invalidJSON(start, open)
	}
	return v, err
}

// split reads the rest of a value as value does, without checking it: the
// caller does (see addJSON).
func (s *jsonStream) split(open byte) ([]byte, error) {
	start := s.off - 1
	s.buf = append(s.buf[:0], open)
	sc := splitter{depth: 1, inString: open == '"'}
	if sc.inString {
		sc.depth = 0
	}
	for {
		chunk, err := s.r.Peek(max(s.r.Buffered(), 1))
		end := sc.scan(chunk)
		if end >= 0 {
			chunk = chunk[:end]
		}
		s.buf = append(s.buf, chunk...)
		s.discard(len(chunk))
		if len(s.buf) > maxRecordBytes {
			return nil, fmt.Errorf("offset %d: a JSON %s over %d bytes: %w", start, kindOf(open), maxRecordBytes, errTooLong)
		}
		switch {
		case end >= 0:
			return s.buf, nil
		case errors.Is(err, io.EOF):
			return nil, fmt.Errorf("offset %d: unexpected end of file in a JSON %s (truncated?)", start, kindOf(open))
		case err != nil:
			return nil, err
		}
	}
}

// invalidJSON is the error for an invalid value that starts with open at
// offset start.
func invalidJSON(start int64, open byte) error {
	return fmt.Errorf("offset %d: invalid JSON %s", start, kindOf(open))
}

// splitter finds where a JSON value ends in a stream, chunk by chunk, by
// tracking strings and nesting. It does not validate.
type splitter struct {
	depth    int  // open objects and arrays
	inString bool // inside a string
	escaped  bool // inside a string, after a backslash
}

// scan consumes chunk and returns the index just past the end of the
// value, or -1 if the value goes on after chunk.
func (sc *splitter) scan(chunk []byte) int {
	for i := 0; i < len(chunk); {
		if sc.escaped {
			sc.escaped = false
			i++
			continue
		}
		if sc.inString {
			// Jump to the closing quote, or to the first backslash before it.
			rest := chunk[i:]
			q := bytes.IndexByte(rest, '"')
			if q < 0 {
				q = len(rest)
			}
			if bs := bytes.IndexByte(rest[:q], '\\'); bs >= 0 {
				i += bs + 1
				sc.escaped = true
				continue
			}
			if i += q + 1; i > len(chunk) {
				return -1
			}
			sc.inString = false
			if sc.depth == 0 {
				return i
			}
			continue
		}
		switch chunk[i] {
		case '"':
			sc.inString = true
		case '{', '[':
			sc.depth++
		case '}', ']':
			if sc.depth--; sc.depth == 0 {
				return i + 1
			}
		}
		i++
	}
	return -1
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
