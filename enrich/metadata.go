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
//   - CSV: a header, then one device per record. The column named
//     device_id is the id, or the first column, whatever it is called, if
//     none is. asset_tag, location_id and device_location_tenant_name (or
//     tenant_name, when that is absent or empty) fill the Device's fields.
//     Names are matched case-insensitively; columns with no name (a
//     spreadsheet's stray empty columns) are left out of the metadata.
//   - JSON: an object keyed by device id whose values are objects, or an
//     array of objects carrying "device_id".
//   - NDJSON: objects carrying "device_id", one per line (any whitespace
//     between them is accepted).
//
// In JSON and NDJSON, ids and fields may be strings or numbers. Ids are
// trimmed of the spaces around them (the metadata keeps them as written),
// so "vr-1 " is found by an event of vr-1; events' ids are matched
// exactly. Records with an empty or blank id are skipped, and duplicate ids resolve to the
// last record; ParseStats counts both. A file with no devices is not an
// error here. A malformed or truncated file is: a CSV record with the
// wrong number of fields, JSON that ends early, bad gzip.
//
// Without a name or content type that says NDJSON, a file whose first
// object has only objects for values, as far as the first 64 KiB show, and
// is not followed by another object, reads as keyed JSON.
//
// The file is streamed: memory is the table plus small buffers and, while
// its index is built, 16 bytes per device (BenchmarkParseMetadata reports
// the peak). One device's record (a CSV line, a JSON value) is limited to
// 1 MiB.
func ParseMetadata(r io.Reader, hint FormatHint) (*Devices, error) {
	return ParseMetadataWithin(r, hint, 0)
}

// ParseMetadataWithin is ParseMetadata for a table that may keep at most
// maxBytes bytes (metadata, records and index; duplicates count until the
// table is built): a larger file is an error, found while it is read, so
// that a file too large for the instance, or a small gzip file of
// millions of rows, fails its load instead of the process. 0 means no
// limit.
func ParseMetadataWithin(r io.Reader, hint FormatHint, maxBytes int64) (*Devices, error) {
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
	hinted := hint.format()
	format := detect(br, hinted)
	b := &builder{limit: maxBytes}
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
		how := "by its first bytes"
		if hinted != "" {
			how = "as its name's extension or its content type says"
		}
		return nil, fmt.Errorf("parse metadata (%s, %s): %w", format, how, err)
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
// members of p, the start of the file's first object, as far as p goes.
// An NDJSON record has a device_id key, not always first (a BigQuery
// export whose first column is a STRUCT starts with an object value), and
// is followed by another record; keyed JSON is one object whose values
// are objects. A first object too long for p is NDJSON if it has a value
// that is not an object.
func sniffObject(p []byte) Format {
	tooLong := FormatJSON // NDJSON once a value is not an object
	for i := skipSpace(p, 1); i < len(p) && p[i] == '"'; {
		end := stringEnd(p, i)
		if end >= len(p) {
			return tooLong
		}
		if roleOf(p[i+1:end-1]) == roleID {
			return FormatNDJSON
		}
		j := skipSpace(p, end)
		if j >= len(p) || p[j] != ':' {
			return FormatJSON // malformed: the parser says how
		}
		if j = skipSpace(p, j+1); j < len(p) && p[j] != '{' {
			tooLong = FormatNDJSON
		}
		if j >= len(p) {
			return tooLong
		}
		if j = skipSpace(p, valueEnd(p, j)); j >= len(p) {
			return tooLong
		}
		switch p[j] {
		case ',':
			i = skipSpace(p, j+1)
		case '}':
			if k := skipSpace(p, j+1); k < len(p) && p[k] == '{' {
				return FormatNDJSON
			}
			return FormatJSON
		default:
			return FormatJSON
		}
	}
	return tooLong // {}, or a key too long to tell
}
