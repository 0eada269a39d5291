package enrich

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// csvColumns is what a CSV header says about each column.
type csvColumns struct {
	// prefixes hold what precedes each column's value in a device's
	// metadata: `{"name":"` for the first, `","name":"` for the others.
	prefixes [][]byte
	roles    []role
}

// newCSVColumns reads a header. The first column is the device id, whatever
// it is called; names are trimmed and must be unique.
func newCSVColumns(header []string) (csvColumns, error) {
	c := csvColumns{prefixes: make([][]byte, len(header)), roles: make([]role, len(header))}
	seen := make(map[string]bool, len(header))
	for i, name := range header {
		name = strings.TrimSpace(name)
		if seen[name] {
			return c, fmt.Errorf("header: duplicate column %q", name)
		}
		seen[name] = true
		var p []byte
		if i == 0 {
			p = append(p, '{')
		} else {
			p = append(p, `",`...)
		}
		p, _ = appendString(p, name)
		c.prefixes[i] = append(p, ':', '"')
		if r := roleOf(name); i == 0 {
			c.roles[i] = roleID
		} else if r != roleID {
			c.roles[i] = r
		}
	}
	return c, nil
}

// parseCSV reads CSV metadata: a header, then one device per record, every
// record with the header's number of fields.
func parseCSV(r io.Reader, b *builder) error {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil // an empty file: no devices
	}
	if err != nil {
		return err
	}
	cols, err := newCSVColumns(header)
	if err != nil {
		return err
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		b.stats.Rows++
		if strings.TrimSpace(rec[0]) == "" {
			b.stats.Blank++
			continue
		}
		b.addCSV(cols, rec)
	}
}

// addCSV stores the device of one CSV record.
func (b *builder) addCSV(cols csvColumns, rec []string) {
	b.begin()
	buf := b.buf // see member
	for i, v := range rec {
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
	b.commit()
}
