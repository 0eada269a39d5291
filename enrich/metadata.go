package enrich

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"mime"
	"path"
	"strings"
)

// FormatHint is what is known about a metadata file besides its bytes:
// its object or file name and its stored content type and encoding.
type FormatHint struct {
	Name, ContentType, ContentEncoding string
}

// format returns the format the hint names, or "" when it names none. The
// name's extension (.csv, .json, .ndjson or .jsonl, each optionally
// followed by .gz) wins over the content type.
func (h FormatHint) format() Format {
	name := strings.ToLower(h.Name)
	name = strings.TrimSuffix(strings.TrimSuffix(name, ".gz"), ".gzip")
	switch path.Ext(name) {
	case ".csv":
		return FormatCSV
	case ".json":
		return FormatJSON
	case ".ndjson", ".jsonl":
		return FormatNDJSON
	}
	mt, _, _ := mime.ParseMediaType(h.ContentType)
	switch mt {
	case "text/csv", "application/csv", "text/comma-separated-values":
		return FormatCSV
	case "application/json", "text/json":
		return FormatJSON
	case "application/x-ndjson", "application/ndjson", "application/jsonl",
		"application/x-jsonlines", "application/jsonlines", "application/json-seq":
		return FormatNDJSON
	}
	return ""
}

// bufSize is the read buffer size; the format is sniffed within it.
const bufSize = 64 << 10

// ParseMetadata reads a whole metadata file into a Devices table.
//
// The file may be gzip-compressed: compression is recognized by its magic
// bytes, not by the hint, because GCS serves objects stored with
// Content-Encoding: gzip decompressed to clients that do not ask otherwise.
// The format comes from the hint; without one, the first non-space byte
// decides: '[' is a JSON array, '{' a JSON object keyed by device id or
// NDJSON (see below), anything else CSV. A .json file (or content type)
// whose first object does not look keyed by id is read as NDJSON, as
// BigQuery exports name theirs .json.
//
//   - CSV: a header, whose first column is the device id whatever it is
//     called, then one device per record. asset_tag, location_id and
//     device_location_tenant_name (or tenant_name) fill the Device's
//     fields, matched case-insensitively.
//   - JSON: an object keyed by device id whose values are objects, or an
//     array of objects carrying "device_id".
//   - NDJSON: objects carrying "device_id", one per line (any whitespace
//     between them is accepted).
//
// In JSON and NDJSON, ids and fields may be strings or numbers. Records
// with an empty or blank id are skipped, and duplicate ids resolve to the
// last record; ParseStats counts both. A file with no devices is not an
// error here. A malformed or truncated file is: a CSV record with the
// wrong number of fields, JSON that ends early, bad gzip.
//
// Without a name or content type that says NDJSON, a file of objects whose
// first member is an object not called device_id reads as keyed JSON.
//
// The file is streamed: memory is the table plus small buffers and, while
// its index is built, 16 bytes per device (BenchmarkParseMetadata reports
// the peak).
func ParseMetadata(r io.Reader, hint FormatHint) (*Devices, error) {
	pauser, _ := r.(Pauser)
	br := bufio.NewReaderSize(r, bufSize)
	if p, _ := br.Peek(2); len(p) == 2 && p[0] == 0x1f && p[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("parse metadata: gzip: %w", err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, bufSize)
	}
	format := detect(br, hint.format())
	b := &builder{}
	var err error
	switch format {
	case FormatCSV:
		err = parseCSV(br, b)
	case FormatJSON:
		err = parseJSON(&jsonStream{r: br}, b)
	default:
		err = parseNDJSON(&jsonStream{r: br}, b)
	}
	if err != nil {
		return nil, fmt.Errorf("parse metadata (%s): %w", format, err)
	}
	return b.finish(format, pauser), nil
}

// Pauser is implemented by a reader that paces the parse it feeds: the
// cache's background refreshes read through one, which sleeps between
// reads so that requests keep the CPU. Once the last byte is read,
// ParseMetadata still indexes the devices (a few milliseconds per 100,000,
// in one go); if r is a Pauser, it calls Pause every pauseEvery devices
// meanwhile, so that the reader can pace that work too.
type Pauser interface {
	Pause()
}

// detect skips a UTF-8 byte order mark and returns the file's format: the
// hinted one, else sniffed from the first bytes.
func detect(br *bufio.Reader, hinted Format) Format {
	p, _ := br.Peek(br.Size()) // read errors come back on the next read
	if len(p) >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF {
		br.Discard(3)
		p = p[3:]
	}
	if hinted == FormatCSV || hinted == FormatNDJSON {
		return hinted
	}
	i := skipSpace(p, 0)
	switch {
	case i == len(p):
		return orDefault(hinted, FormatCSV)
	case p[i] == '{':
		return sniffObject(p[i:])
	case p[i] == '[' || hinted == FormatJSON:
		return FormatJSON
	}
	return FormatCSV
}

// sniffObject tells a JSON object keyed by device id from NDJSON by the
// first member of p, the start of the file's first object: keyed JSON has
// an object as its first value, NDJSON has a device_id key or a value that
// is not an object.
func sniffObject(p []byte) Format {
	i := skipSpace(p, 1)
	if i >= len(p) || p[i] != '"' {
		return FormatJSON // {} or too long to tell
	}
	end := stringEnd(p, i)
	if end >= len(p) {
		return FormatJSON
	}
	if roleOf(p[i+1:end-1]) == roleID {
		return FormatNDJSON
	}
	if j := skipSpace(p, end); j < len(p) && p[j] == ':' {
		if j = skipSpace(p, j+1); j < len(p) && p[j] != '{' {
			return FormatNDJSON
		}
	}
	return FormatJSON
}
