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
	"testing"
	"testing/iotest"
)

// FuzzCSVReader holds csvReader to encoding/csv: the same records and the
// same error (message included), whether the input comes all at once or a
// byte at a time through a small buffer, where lines outgrow the buffer.
func FuzzCSVReader(f *testing.F) {
	addFiles(f, "*.csv", func(_ string, data []byte) { f.Add(data) })
	for _, s := range []string{
		"a,b\r\n\"c\"\"d\",e\n", "\"a\nb\",c\r\n\r\nd,e", "\"a\r\nb\"\r\n", "a\"b,c", "a,\"b\"c\n",
		"\"abc", "a,\"b\n\nc", "a,b\n\nc\n", "a,b\nc,d,e\n", "a\r", "\r\n\n\"\"\r", "\n\n", "",
		"x,\"" + strings.Repeat("y", 40) + "\n\"\n" + strings.Repeat("z,", 30),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		want, wantErr := readCSV(t, data, nil)
		got, err := readCSV(t, data, bufio.NewReader(bytes.NewReader(data)))
		got1, err1 := readCSV(t, data, bufio.NewReaderSize(iotest.OneByteReader(bytes.NewReader(data)), 16))
		if fmt.Sprint(err) != fmt.Sprint(wantErr) || !slices.Equal(got, want) {
			t.Fatalf("csvReader(%q) = %q, %v; encoding/csv: %q, %v", data, got, err, want, wantErr)
		}
		if fmt.Sprint(err1) != fmt.Sprint(wantErr) || !slices.Equal(got1, want) {
			t.Fatalf("csvReader(%q, one byte at a time) = %q, %v; encoding/csv: %q, %v", data, got1, err1, want, wantErr)
		}
	})
}

// readCSV reads data's records with encoding/csv when r is nil, else with
// a csvReader over r, and returns them, one string per record, until the
// first error, which it returns unless it is io.EOF.
func readCSV(t *testing.T, data []byte, r *bufio.Reader) ([]string, error) {
	t.Helper()
	var read func() ([]string, error)
	if r == nil {
		cr := csv.NewReader(bytes.NewReader(data))
		cr.ReuseRecord = true
		read = cr.Read
	} else {
		cr := csvReader{r: r}
		read = func() ([]string, error) {
			rec, err := cr.read()
			fields := make([]string, len(rec))
			for i, field := range rec {
				fields[i] = string(field)
			}
			return fields, err
		}
	}
	var out []string
	for len(out) <= len(data) {
		rec, err := read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, fmt.Sprintf("%q", rec))
	}
	t.Fatalf("read %d records from %d bytes", len(out), len(data))
	return nil, nil
}
