package enrich

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// csvColumns is what a CSV header says about each column.
type csvColumns struct {
	// prefixes hold what precedes each column's value in a device's
	// metadata: `{"name":"` for the first, `","name":"` for the others,
	// nil for a column left out (no name).
	prefixes [][]byte
	roles    []role
	id       int // the device id's column
}

// newCSVColumns reads a header. The device id is the column named
// device_id, or the first column, whatever it is called, if none is.
// Names are trimmed and must be unique; other columns with no name (a
// spreadsheet's stray empty columns) are left out.
func newCSVColumns(header []string) (csvColumns, error) {
	c := csvColumns{prefixes: make([][]byte, len(header)), roles: make([]role, len(header))}
	names := make([]string, len(header))
	for i, name := range header {
		names[i] = strings.TrimSpace(name)
	}
	c.id = max(slices.IndexFunc(names, func(n string) bool { return roleOf(n) == roleID }), 0)
	seen := make(map[string]bool, len(header))
	open := false // the metadata object's brace is written
	for i, name := range names {
		if name == "" && i != c.id {
			continue
		}
		// Names are unique as the metadata writes them: invalid UTF-8
		// becomes U+FFFD there, so "\xff" and "\xfe" are the same name.
		key := strings.ToValidUTF8(name, "\uFFFD")
		if seen[key] {
			return c, fmt.Errorf("header: duplicate column %q", name)
		}
		seen[key] = true
		var p []byte
		if !open {
			p = append(p, '{')
			open = true
		} else {
			p = append(p, `",`...)
		}
		p, _ = appendString(p, name)
		c.prefixes[i] = append(p, ':', '"')
		if r := roleOf(name); i == c.id {
			c.roles[i] = roleID
		} else if r != roleID {
			c.roles[i] = r
		}
	}
	return c, nil
}

// parseCSV reads CSV metadata: a header, then one device per record, every
// record with the header's number of fields.
func parseCSV(r *bufio.Reader, b *builder) error {
	cr := csvReader{r: r}
	header, err := cr.read()
	if errors.Is(err, io.EOF) {
		return nil // an empty file: no devices
	}
	if err != nil {
		return err
	}
	names := make([]string, len(header))
	for i, name := range header {
		names[i] = string(name)
	}
	cols, err := newCSVColumns(names)
	if err != nil {
		return err
	}
	for {
		rec, err := cr.read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		b.stats.Rows++
		if len(bytes.TrimSpace(rec[cols.id])) == 0 {
			b.stats.Blank++
			continue
		}
		if err := b.addCSV(cols, rec); err != nil {
			return err
		}
	}
}

// addCSV stores the device of one CSV record.
func (b *builder) addCSV(cols csvColumns, rec [][]byte) error {
	b.begin()
	buf := b.buf // see member
	for i, field := range rec {
		if cols.prefixes[i] == nil {
			continue
		}
		// v lives no longer than this iteration, and field is not
		// written meanwhile: the reader reuses its buffer on the next
		// read only.
		v := unsafe.String(unsafe.SliceData(field), len(field))
		buf = append(buf, cols.prefixes[i]...)
		off := len(buf)
		var verbatim bool
		buf, verbatim = appendStringContent(buf, v)
		switch r := cols.roles[i]; {
		case r == roleNone:
		case verbatim:
			b.setSpan(r, off, len(v))
		case utf8.ValidString(v):
			b.setText(r, strings.Clone(v))
		default: // each invalid byte becomes U+FFFD, as in the JSON
			b.setText(r, string([]rune(v)))
		}
	}
	b.buf = append(buf, '"')
	return b.commit()
}

// csvReader reads CSV exactly as an encoding/csv Reader with its default
// settings does (records, skipped empty lines, line endings and errors),
// but returns each record's fields as slices of one buffer that the next
// read reuses, where encoding/csv allocates a string per record: a million
// allocations for a million devices. The code is encoding/csv's readRecord
// less the settings it does not use (Copyright 2011 The Go Authors, under
// the BSD-style license in $(go env GOROOT)/LICENSE); FuzzCSVReader
// compares the two.
type csvReader struct {
	r       *bufio.Reader
	long    []byte   // a line longer than r's buffer
	lines   int      // the number of lines read
	record  []byte   // the fields of the last record, one after the other
	ends    []int    // where each field ends in record
	fields  [][]byte // the last record
	nfields int      // fields per record: the first record's number
}

// readLine returns the next line, with a final \r\n turned into \n. The
// line is valid until the next read.
func (c *csvReader) readLine() ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		c.long = append(c.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = c.r.ReadSlice('\n')
			c.long = append(c.long, line...)
			if len(c.long) > maxRecordBytes {
				return nil, errRecordTooLong(c.lines + 1)
			}
		}
		line = c.long
	}
	if len(line) > 0 && errors.Is(err, io.EOF) {
		err = nil
		line = bytes.TrimSuffix(line, []byte{'\r'}) // as encoding/csv does
	}
	c.lines++
	if n := len(line); n >= 2 && line[n-2] == '\r' && line[n-1] == '\n' {
		line[n-2] = '\n'
		line = line[:n-1]
	}
	return line, err
}

// read returns the next record, skipping empty lines, or io.EOF at the
// end. The record is valid until the next read.
func (c *csvReader) read() ([][]byte, error) {
	var line []byte
	var errRead error
	for errRead == nil {
		if line, errRead = c.readLine(); len(line) != lengthNL(line) {
			break
		}
	}
	if errors.Is(errRead, io.EOF) {
		return nil, errRead
	}
	start := c.lines
	lineNo, col := start, 1 // where parsing is, for errors
	parseError := func(line, col int, err error) error {
		return &csv.ParseError{StartLine: start, Line: line, Column: col, Err: err}
	}
	c.record, c.ends = c.record[:0], c.ends[:0]
	var err error
fields:
	for {
		if len(line) == 0 || line[0] != '"' { // an unquoted field
			i := bytes.IndexByte(line, ',')
			field := line
			if i >= 0 {
				field = field[:i]
			} else {
				field = field[:len(field)-lengthNL(field)]
			}
			if j := bytes.IndexByte(field, '"'); j >= 0 {
				err = parseError(c.lines, col+j, csv.ErrBareQuote)
				break
			}
			c.record = append(c.record, field...)
			c.ends = append(c.ends, len(c.record))
			if i < 0 {
				break
			}
			line = line[i+1:]
			col += i + 1
			continue
		}
		line = line[1:] // a quoted field, which may span lines
		col++
		for {
			i := bytes.IndexByte(line, '"')
			switch {
			case i >= 0:
				c.record = append(c.record, line[:i]...)
				line = line[i+1:]
				col += i + 1
				switch {
				case len(line) > 0 && line[0] == '"': // "" is a quote
					c.record = append(c.record, '"')
					line = line[1:]
					col++
				case len(line) > 0 && line[0] == ',':
					line = line[1:]
					col++
					c.ends = append(c.ends, len(c.record))
					continue fields
				case len(line) == lengthNL(line):
					c.ends = append(c.ends, len(c.record))
					break fields
				default:
					err = parseError(c.lines, col-1, csv.ErrQuote)
					break fields
				}
			case len(line) > 0: // the field goes on on the next line
				c.record = append(c.record, line...)
				if errRead != nil {
					break fields
				}
				if len(c.record) > maxRecordBytes {
					err = errRecordTooLong(lineNo)
					break fields
				}
				col += len(line)
				line, errRead = c.readLine()
				if len(line) > 0 {
					lineNo++
					col = 1
				}
				if errors.Is(errRead, io.EOF) {
					errRead = nil
				}
			case errRead == nil: // the end of the file
				err = parseError(lineNo, col, csv.ErrQuote)
				break fields
			default:
				c.ends = append(c.ends, len(c.record))
				break fields
			}
		}
	}
	if err == nil {
		err = errRead
	}
	return c.split(start, err)
}

// split cuts the record read into fields and checks their number.
func (c *csvReader) split(start int, err error) ([][]byte, error) {
	c.fields = c.fields[:0]
	prev := 0
	for _, end := range c.ends {
		c.fields = append(c.fields, c.record[prev:end])
		prev = end
	}
	switch {
	case c.nfields == 0:
		c.nfields = len(c.fields)
	case len(c.fields) != c.nfields && err == nil:
		err = &csv.ParseError{StartLine: start, Line: start, Column: 1, Err: csv.ErrFieldCount}
	}
	return c.fields, err
}

// lengthNL returns 1 if b ends with a newline, else 0.
func lengthNL(b []byte) int {
	if len(b) > 0 && b[len(b)-1] == '\n' {
		return 1
	}
	return 0
}
