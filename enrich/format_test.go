package enrich

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"maps"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseMetadataMalformed(t *testing.T) {
	errRead := errors.New("connection reset")
	tests := []struct {
		name string
		hint FormatHint
		in   io.Reader
		is   error // if set, the error must wrap it
	}{
		{"CSV, last record truncated", FormatHint{}, strings.NewReader("device_id,asset_tag\nvr-1,AT-1\nvr-2"), nil},
		{"CSV, record too long", FormatHint{}, strings.NewReader("device_id,asset_tag\nvr-1,AT-1,x\n"), nil},
		{"CSV, unterminated quote", FormatHint{}, strings.NewReader("device_id,asset_tag\nvr-1,\"AT-1\n"), nil},
		{"CSV, bare quote", FormatHint{}, strings.NewReader("device_id,asset_tag\nvr-1,A\"T\n"), nil},
		{"CSV, duplicate column", FormatHint{}, strings.NewReader("device_id,tag, tag\n"), nil},
		{"CSV, columns the same once invalid UTF-8 is replaced", FormatHint{}, strings.NewReader("\xff,,\xce\n0,,\n"), nil},
		{"CSV, read error", FormatHint{}, io.MultiReader(strings.NewReader("device_id\nvr-1\n"), iotest.ErrReader(errRead)), errRead},
		{"JSON, truncated object", FormatHint{}, strings.NewReader(`{"vr-1":{"asset_tag":"AT-1"},"vr-2":{"asset`), nil},
		{"JSON, truncated after a member", FormatHint{}, strings.NewReader(`{"vr-1":{"asset_tag":"AT-1"}`), nil},
		{"JSON, truncated array", FormatHint{}, strings.NewReader(`[{"device_id":"vr-1"},`), nil},
		{"JSON, truncated array after an element", FormatHint{}, strings.NewReader(`[{"device_id":"vr-1"}`), nil},
		{"JSON, trailing data", FormatHint{}, strings.NewReader(`[{"device_id":"vr-1"}] x`), nil},
		{"JSON, two documents", FormatHint{}, strings.NewReader(`[] []`), nil},
		{"JSON, element not an object", FormatHint{}, strings.NewReader(`[{"device_id":"vr-1"},"vr-2"]`), nil},
		{"JSON, trailing comma", FormatHint{}, strings.NewReader(`[{"device_id":"vr-1"},]`), nil},
		{"JSON, missing comma", FormatHint{}, strings.NewReader(`[{"device_id":"vr-1"} {"device_id":"vr-2"}]`), nil},
		{"JSON, keyed value not an object", FormatHint{Name: "d.json"}, strings.NewReader(`{"vr-1":{"a":1},"vr-2":"AT-2"}`), nil},
		{"JSON, keyed missing colon", FormatHint{Name: "d.json"}, strings.NewReader(`{"vr-1" {"a":1}}`), nil},
		{"JSON, keyed key not a string", FormatHint{Name: "d.json"}, strings.NewReader(`{"vr-1":{},1:{}}`), nil},
		{"JSON, keyed bad key", FormatHint{Name: "d.json"}, strings.NewReader(`{"vr-1":{},"a\x01":{}}`), nil},
		{"JSON, invalid object", FormatHint{}, strings.NewReader(`[{"device_id":"vr-1",}]`), nil},
		{"JSON, mismatched brackets", FormatHint{}, strings.NewReader(`[{"device_id":"vr-1"]]`), nil},
		{"JSON, boolean id", FormatHint{}, strings.NewReader(`[{"device_id":true}]`), nil},
		{"JSON, object id", FormatHint{}, strings.NewReader(`[{"device_id":{"v":1}}]`), nil},
		{"JSON, invalid UTF-8", FormatHint{}, strings.NewReader("[{\"device_id\":\"vr-\xff\"}]"), nil},
		{"JSON, not JSON", FormatHint{Name: "d.json"}, strings.NewReader("device_id\nvr-1\n"), nil},
		{"JSON, read error", FormatHint{}, io.MultiReader(strings.NewReader(`[{"device_id":"vr-1"}`), iotest.ErrReader(errRead)), errRead},
		{"NDJSON, truncated last line", FormatHint{Name: "d.ndjson"}, strings.NewReader("{\"device_id\":\"vr-1\"}\n{\"device_id\":\"vr"), nil},
		{"NDJSON, an array", FormatHint{Name: "d.ndjson"}, strings.NewReader(`[{"device_id":"vr-1"}]`), nil},
		{"NDJSON, a string", FormatHint{Name: "d.jsonl"}, strings.NewReader("{\"device_id\":\"vr-1\"}\n\"vr-2\"\n"), nil},
		{"gzip, truncated", FormatHint{}, bytes.NewReader(gzipped("device_id\nvr-1\n")[:20]), nil},
		{"gzip, corrupt", FormatHint{}, bytes.NewReader(corrupt(gzipped("device_id\nvr-1\n"))), nil},
		{"gzip, trailing garbage", FormatHint{}, bytes.NewReader(append(gzipped("device_id\nvr-1\n"), "garbage"...)), nil},
		{"gzip, bad header", FormatHint{}, strings.NewReader("\x1f\x8b\x00garbage"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseMetadata(tt.in, tt.hint)
			if err == nil {
				t.Fatalf("ParseMetadata = %d devices, %+v, want an error", d.Len(), d.Stats())
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("ParseMetadata error = %v, want one wrapping %v", err, tt.is)
			}
			if !strings.HasPrefix(err.Error(), "parse metadata") {
				t.Errorf("ParseMetadata error = %q, want it to start with %q", err, "parse metadata")
			}
		})
	}
}

// gzipped returns s compressed.
func gzipped(s string) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(s))
	zw.Close()
	return buf.Bytes()
}

// corrupt returns a copy of a gzip stream with its compressed data flipped.
func corrupt(z []byte) []byte {
	z = bytes.Clone(z)
	for i := 10; i < len(z)-8; i++ {
		z[i] ^= 0xff
	}
	return z
}

func TestParseMetadataGzip(t *testing.T) {
	csv := "device_id,asset_tag\nvr-1,AT-1\n"
	want := map[string]dev{"vr-1": {"vr-1", "AT-1", "", "", `{"device_id":"vr-1","asset_tag":"AT-1"}`}}
	tests := []struct {
		name string
		hint FormatHint
		in   []byte
	}{
		{"by magic bytes", FormatHint{}, gzipped(csv)},
		{"named .gz", FormatHint{Name: "gs://b/devices.csv.gz"}, gzipped(csv)},
		{"Content-Encoding gzip", FormatHint{Name: "devices.csv", ContentEncoding: "gzip"}, gzipped(csv)},
		{"multistream", FormatHint{}, append(gzipped("device_id,asset_tag\n"), gzipped("vr-1,AT-1\n")...)},
		// GCS decompresses objects stored with Content-Encoding: gzip for
		// clients that do not ask for the compressed bytes.
		{"hinted but served decompressed", FormatHint{Name: "devices.csv.gz", ContentEncoding: "gzip"}, []byte(csv)},
		{"JSON sniffed inside gzip", FormatHint{}, gzipped(`[{"device_id":"vr-1","asset_tag":"AT-1"}]`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseMetadata(bytes.NewReader(tt.in), tt.hint)
			if err != nil {
				t.Fatalf("ParseMetadata(%+v) error: %v", tt.hint, err)
			}
			if got := contents(t, d); !maps.Equal(got, want) {
				t.Errorf("ParseMetadata(%+v) = %v, want %v", tt.hint, got, want)
			}
		})
	}
}

func TestFormatHint(t *testing.T) {
	tests := []struct {
		hint FormatHint
		want Format
	}{
		{FormatHint{Name: "devices.csv"}, FormatCSV},
		{FormatHint{Name: "gs://bucket/dir/DEVICES.CSV.GZ"}, FormatCSV},
		{FormatHint{Name: "devices.json"}, FormatJSON},
		{FormatHint{Name: "devices.json.gz", ContentType: "text/csv"}, FormatJSON},
		{FormatHint{Name: "devices.ndjson"}, FormatNDJSON},
		{FormatHint{Name: "devices.jsonl.gzip"}, FormatNDJSON},
		{FormatHint{Name: "devices", ContentType: "text/csv; charset=utf-8"}, FormatCSV},
		{FormatHint{Name: "devices.txt", ContentType: "application/json"}, FormatJSON},
		{FormatHint{ContentType: "application/x-ndjson"}, FormatNDJSON},
		{FormatHint{ContentType: "application/jsonl"}, FormatNDJSON},
		{FormatHint{Name: "devices.gz", ContentType: "application/gzip", ContentEncoding: "gzip"}, ""},
		{FormatHint{ContentType: "application/octet-stream"}, ""},
		{FormatHint{ContentType: "not a media type;;"}, ""},
		{FormatHint{}, ""},
	}
	for _, tt := range tests {
		if got := tt.hint.format(); got != tt.want {
			t.Errorf("%+v.format() = %q, want %q", tt.hint, got, tt.want)
		}
	}
}

// TestParseMetadataDepth: a device object may nest as deep as BigQuery's
// JSON type takes (500 levels, the device object being the first), since it
// becomes the row's device_metadata; a deeper one refuses the file, with
// an error that says why, in every JSON format and however the object
// falls in the reader's buffer.
func TestParseMetadataDepth(t *testing.T) {
	device := func(levels int) string { // levels counts the device object
		return `{"device_id":"vr-1","x":` + strings.Repeat("[", levels-1) + strings.Repeat("]", levels-1) + `}`
	}
	for _, format := range []struct {
		name string
		hint FormatHint
		wrap func(dev string) string
	}{
		{"JSON array", FormatHint{Name: "d.json"}, func(dev string) string { return "[" + dev + "]" }},
		{"JSON keyed", FormatHint{Name: "d.json"}, func(dev string) string { return `{"vr-1":` + dev + "}" }},
		{"NDJSON", FormatHint{Name: "d.ndjson"}, func(dev string) string { return dev + "\n" }},
	} {
		for _, levels := range []int{maxMetadataDepth, maxMetadataDepth + 1} {
			for _, oneByte := range []bool{false, true} {
				var in io.Reader = strings.NewReader(format.wrap(device(levels)))
				if oneByte {
					in = iotest.OneByteReader(in)
				}
				d, err := ParseMetadata(in, format.hint)
				switch {
				case levels <= maxMetadataDepth && err != nil:
					t.Errorf("%s, %d levels: %v, want the device", format.name, levels, err)
				case levels <= maxMetadataDepth && d.Len() != 1:
					t.Errorf("%s, %d levels: %d devices, want 1", format.name, levels, d.Len())
				case levels > maxMetadataDepth && (err == nil || !strings.Contains(err.Error(), "nested deeper than 500 levels")):
					t.Errorf("%s, %d levels: error %v, want one that says the device nests deeper than 500 levels", format.name, levels, err)
				}
			}
		}
	}
}

// TestParseMetadataRecordLimit: one device's record (a CSV line, with its
// quoted line breaks; a JSON value) is limited to 1 MiB, so that a file
// without line ends is not read into memory whole; one under the limit
// loads, in every format.
func TestParseMetadataRecordLimit(t *testing.T) {
	pad := func(n int) string { return strings.Repeat("x", n) }
	for _, tt := range []struct {
		name string
		hint FormatHint
		file func(n int) string // a file whose one record has a field of n bytes
	}{
		{"CSV line", FormatHint{Name: "d.csv"}, func(n int) string { return "device_id,note\nvr-1," + pad(n) + "\n" }},
		{"CSV without line ends", FormatHint{Name: "d.csv"}, func(n int) string { return "device_id,note\nvr-1," + pad(n) }},
		{"CSV quoted lines", FormatHint{Name: "d.csv"}, func(n int) string {
			return "device_id,note\nvr-1,\"" + strings.Repeat(pad(99)+"\n", n/100) + "\"\n"
		}},
		{"JSON array", FormatHint{Name: "d.json"}, func(n int) string { return `[{"device_id":"vr-1","note":"` + pad(n) + `"}]` }},
		{"JSON keyed", FormatHint{Name: "d.json"}, func(n int) string { return `{"vr-1":{"note":"` + pad(n) + `"}}` }},
		{"NDJSON", FormatHint{Name: "d.ndjson"}, func(n int) string { return `{"device_id":"vr-1","note":"` + pad(n) + `"}` + "\n" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseMetadata(strings.NewReader(tt.file(maxRecordBytes-1000)), tt.hint)
			if err != nil || d.Len() != 1 {
				t.Errorf("a record just under the limit: %v, want 1 device", err)
			}
			_, err = ParseMetadata(strings.NewReader(tt.file(maxRecordBytes+1000)), tt.hint)
			if !errors.Is(err, errTooLong) {
				t.Errorf("a record over the limit: error %v, want errTooLong", err)
			}
		})
	}
}

// TestParseMetadataWithinLimit: a table that would keep more than the
// limit fails while it is read (duplicates count: a small gzip file of
// millions of copies of one row must not fill the memory), in every
// format; Bytes reports what a table keeps, within the limit.
func TestParseMetadataWithinLimit(t *testing.T) {
	for _, f := range []Format{FormatCSV, FormatJSON, FormatNDJSON} {
		t.Run(string(f), func(t *testing.T) {
			data := metadataFile(f, 10_000)
			d, err := ParseMetadata(bytes.NewReader(data), FormatHint{})
			if err != nil {
				t.Fatal(err)
			}
			need := d.Bytes()
			if need < 10_000*100 {
				t.Fatalf("Bytes() = %d for 10,000 devices, want at least 100 each", need)
			}
			if d, err = ParseMetadataWithin(bytes.NewReader(data), FormatHint{}, need); err != nil || d.Bytes() != need {
				t.Errorf("within a limit of exactly %d: %v, Bytes() %d, want the table", need, err, d.Bytes())
			}
			_, err = ParseMetadataWithin(bytes.NewReader(data), FormatHint{}, need-1)
			var tooLarge errTableTooLarge
			if !errors.As(err, &tooLarge) || tooLarge.devices != 10_000 ||
				!strings.Contains(err.Error(), "the devices table would keep more than") {
				t.Errorf("within a limit of %d: error %v, want errTableTooLarge at the last device", need-1, err)
			}
		})
	}
	// Copies of one row: one device, but every copy is kept until the
	// table is built.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	io.WriteString(zw, "device_id,asset_tag\n")
	for range 200_000 {
		io.WriteString(zw, "vr-1,AT-1\n")
	}
	zw.Close()
	_, err := ParseMetadataWithin(bytes.NewReader(gz.Bytes()), FormatHint{Name: "d.csv.gz"}, 4<<20)
	var tooLarge errTableTooLarge
	if !errors.As(err, &tooLarge) || tooLarge.devices >= 200_000 {
		t.Errorf("%d bytes of gzip, 200,000 copies of one row, within 4 MiB: error %v, want errTableTooLarge before the end", gz.Len(), err)
	}
}
