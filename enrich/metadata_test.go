package enrich

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

// dev is a Device in comparable form.
type dev struct{ ID, AssetTag, LocationID, TenantName, Metadata string }

func devOf(d *Device) dev {
	return dev{d.ID, d.AssetTag, d.LocationID, d.TenantName, string(d.Metadata)}
}

// contents returns the devices of d by id, checking on the way that every
// stored device's id looks up a device with that id.
func contents(t testing.TB, d *Devices) map[string]dev {
	t.Helper()
	out := make(map[string]dev)
	for _, chunk := range d.chunks {
		for i := range chunk {
			got, ok := d.Lookup(chunk[i].ID)
			if !ok || got.ID != chunk[i].ID {
				t.Fatalf("Lookup(%q) = %v, %v, want that device", chunk[i].ID, got, ok)
			}
			out[got.ID] = devOf(got)
		}
	}
	if len(out) != d.Len() {
		t.Fatalf("Len() = %d, but the table holds %d distinct ids", d.Len(), len(out))
	}
	return out
}

func TestParseMetadata(t *testing.T) {
	tests := []struct {
		name  string
		hint  FormatHint
		in    string
		want  []dev
		stats ParseStats
	}{
		{"CSV, the original columns plus one", FormatHint{Name: "devices.csv"},
			"device_id,asset_tag,location_id,device_location_tenant_name,firmware\nvr-1,AT-1,LOC-1,Acme,1.2\nvr-2,AT-2,LOC-2,\"Fabrikam, Inc.\",\n",
			[]dev{
				{"vr-1", "AT-1", "LOC-1", "Acme", `{"device_id":"vr-1","asset_tag":"AT-1","location_id":"LOC-1","device_location_tenant_name":"Acme","firmware":"1.2"}`},
				{"vr-2", "AT-2", "LOC-2", "Fabrikam, Inc.", `{"device_id":"vr-2","asset_tag":"AT-2","location_id":"LOC-2","device_location_tenant_name":"Fabrikam, Inc.","firmware":""}`},
			}, ParseStats{FormatCSV, 2, 0, 0}},
		{"CSV, any id column name, names trimmed and matched case-insensitively", FormatHint{},
			"serial, Asset_Tag ,LOCATION_ID,tenant_name,device_id\r\nsn-1,AT-1,LOC-1,Acme,other\r\n",
			[]dev{{"sn-1", "AT-1", "LOC-1", "Acme", `{"serial":"sn-1","Asset_Tag":"AT-1","LOCATION_ID":"LOC-1","tenant_name":"Acme","device_id":"other"}`}},
			ParseStats{FormatCSV, 1, 0, 0}},
		{"CSV, device_location_tenant_name wins over tenant_name", FormatHint{},
			"id,tenant_name,device_location_tenant_name\nd1,T,DLT\nd2,T,\n",
			[]dev{
				{"d1", "", "", "DLT", `{"id":"d1","tenant_name":"T","device_location_tenant_name":"DLT"}`},
				{"d2", "", "", "", `{"id":"d2","tenant_name":"T","device_location_tenant_name":""}`},
			}, ParseStats{FormatCSV, 2, 0, 0}},
		{"CSV, escaping", FormatHint{},
			"\xEF\xBB\xBFdevice_id,asset_tag,note\n\"vr \"\"1\"\"\",\"a\\b\nc\",\"x\xffy\"\n",
			[]dev{{"vr \"1\"", "a\\b\nc", "", "", `{"device_id":"vr \"1\"","asset_tag":"a\\b\nc","note":"x\ufffdy"}`}},
			ParseStats{FormatCSV, 1, 0, 0}},
		{"CSV, invalid UTF-8 in a field", FormatHint{},
			"device_id,asset_tag\nd\xff,a\xfe\n",
			[]dev{{"d\uFFFD", "a\uFFFD", "", "", `{"device_id":"d\ufffd","asset_tag":"a\ufffd"}`}},
			ParseStats{FormatCSV, 1, 0, 0}},
		{"CSV, blank and duplicate ids", FormatHint{},
			"device_id,asset_tag\nvr-1,AT-1\n,AT-x\n \t,AT-y\nvr-2,AT-2\nvr-1,AT-9\n\n",
			[]dev{
				{"vr-1", "AT-9", "", "", `{"device_id":"vr-1","asset_tag":"AT-9"}`},
				{"vr-2", "AT-2", "", "", `{"device_id":"vr-2","asset_tag":"AT-2"}`},
			}, ParseStats{FormatCSV, 5, 2, 1}},
		{"CSV, id column only", FormatHint{}, "device_id\n42\n", []dev{{"42", "", "", "", `{"device_id":"42"}`}}, ParseStats{FormatCSV, 1, 0, 0}},
		{"CSV, header only", FormatHint{Name: "d.csv"}, "device_id,asset_tag\n", nil, ParseStats{FormatCSV, 0, 0, 0}},
		{"empty file", FormatHint{}, "", nil, ParseStats{FormatCSV, 0, 0, 0}},
		{"empty JSON file", FormatHint{Name: "d.json"}, " \n", nil, ParseStats{FormatJSON, 0, 0, 0}},
		{"JSON keyed by id", FormatHint{Name: "devices.json"}, `{
  "vr-1": {"asset_tag": "AT-1", "location_id": 17, "device_location_tenant_name": "Acme",
           "extra": {"a": [1, 2, {"b": "c d"}]}, "flag": true, "none": null},
  "vr-2": {"device_id": "ignored: the key is the id", "asset_tag": null, "location_id": false},
  "vr-\u0033": {"asset_tag": "A\"T"},
  "": {"asset_tag": "blank"},
  "vr-1": {"asset_tag": "AT-1b"}
}`,
			[]dev{
				{"vr-1", "AT-1b", "", "", `{"device_id":"vr-1","asset_tag":"AT-1b"}`},
				{"vr-2", "", "", "", `{"device_id":"vr-2","asset_tag":null,"location_id":false}`},
				{"vr-3", `A"T`, "", "", `{"device_id":"vr-\u0033","asset_tag":"A\"T"}`},
			}, ParseStats{FormatJSON, 5, 1, 1}},
		{"JSON keyed, nested values compacted", FormatHint{},
			"{\"vr-1\": {\"asset_tag\": \"AT 1\", \"location_id\": 17, \"extra\": {\"a\": [1, 2, {\"b\": \"c d\"}]}, \"flag\": true}}",
			[]dev{{"vr-1", "AT 1", "17", "", `{"device_id":"vr-1","asset_tag":"AT 1","location_id":17,"extra":{"a":[1,2,{"b":"c d"}]},"flag":true}`}},
			ParseStats{FormatJSON, 1, 0, 0}},
		{"JSON array", FormatHint{Name: "devices_array.json"}, `[
  {"device_id": 42, "asset_tag": 7, "tenant_name": "T"},
  {"asset_tag": "no id"},
  {"device_id": null},
  {"device_id": " "},
  {"location_id": "L", "Device_ID": "vr-9"}
]`,
			[]dev{
				{"42", "7", "", "T", `{"device_id":42,"asset_tag":7,"tenant_name":"T"}`},
				{"vr-9", "", "L", "", `{"device_id":"vr-9","location_id":"L"}`},
			}, ParseStats{FormatJSON, 5, 3, 0}},
		{"JSON empty array", FormatHint{}, ` [ ] `, nil, ParseStats{FormatJSON, 0, 0, 0}},
		{"JSON empty object", FormatHint{}, `{}`, nil, ParseStats{FormatJSON, 0, 0, 0}},
		{"NDJSON", FormatHint{Name: "devices.ndjson.gz"},
			"{\"device_id\":\"vr-1\",\"asset_tag\":\"AT-1\"}\r\n\n{\"asset_tag\":\"AT-2\", \"device_id\":2}\n{\"device_id\":\"vr-1\",\"asset_tag\":\"AT-3\"}",
			[]dev{
				{"vr-1", "AT-3", "", "", `{"device_id":"vr-1","asset_tag":"AT-3"}`},
				{"2", "AT-2", "", "", `{"device_id":2,"asset_tag":"AT-2"}`},
			}, ParseStats{FormatNDJSON, 3, 0, 1}},
		{"NDJSON in a .json file, as BigQuery exports", FormatHint{Name: "export.json"},
			"{\"device_id\":\"vr-1\",\"asset_tag\":\"AT-1\"}\n{\"device_id\":\"vr-2\"}\n",
			[]dev{
				{"vr-1", "AT-1", "", "", `{"device_id":"vr-1","asset_tag":"AT-1"}`},
				{"vr-2", "", "", "", `{"device_id":"vr-2"}`},
			}, ParseStats{FormatNDJSON, 2, 0, 0}},
		{"NDJSON sniffed by a non-object first value", FormatHint{},
			`{"asset_tag":"AT-1","device_id":"vr-1"}`,
			[]dev{{"vr-1", "AT-1", "", "", `{"device_id":"vr-1","asset_tag":"AT-1"}`}},
			ParseStats{FormatNDJSON, 1, 0, 0}},
		{"NDJSON by content type", FormatHint{Name: "devices", ContentType: "application/x-ndjson; charset=utf-8"},
			`{"meta":{"a":1},"device_id":"vr-1"}`,
			[]dev{{"vr-1", "", "", "", `{"device_id":"vr-1","meta":{"a":1}}`}},
			ParseStats{FormatNDJSON, 1, 0, 0}},
		{"CSV by content type", FormatHint{ContentType: "text/csv"}, "{id}\n{1}\n",
			[]dev{{"{1}", "", "", "", `{"{id}":"{1}"}`}}, ParseStats{FormatCSV, 1, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseMetadata(strings.NewReader(tt.in), tt.hint)
			if err != nil {
				t.Fatalf("ParseMetadata(%q, %+v) error: %v", tt.in, tt.hint, err)
			}
			want := make(map[string]dev)
			for _, w := range tt.want {
				want[w.ID] = w
			}
			if got := contents(t, d); !maps.Equal(got, want) {
				t.Errorf("ParseMetadata(%q) =\n%v\nwant\n%v", tt.in, got, want)
			}
			if got := d.Stats(); got != tt.stats {
				t.Errorf("ParseMetadata(%q).Stats() = %+v, want %+v", tt.in, got, tt.stats)
			}
			if got, want := d.Len(), len(tt.want); got != want {
				t.Errorf("ParseMetadata(%q).Len() = %d, want %d", tt.in, got, want)
			}
		})
	}
}

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

// TestParseMetadataTestdata checks the samples: every format holds the
// same devices as devices.csv, the canonical sample.
func TestParseMetadataTestdata(t *testing.T) {
	want := parseFile(t, "devices.csv")
	if got := len(want); got != 20 {
		t.Fatalf("devices.csv has %d devices, want 20", got)
	}
	if w := want["vr-0006"]; w.TenantName != "Fabrikam, Inc." || w.LocationID != "LOC-CHI-101" || w.AssetTag != "AT-100402" {
		t.Errorf("devices.csv vr-0006 = %+v", w)
	}
	for _, name := range []string{"devices.csv.gz", "devices.json", "devices_array.json", "devices.ndjson"} {
		if got := parseFile(t, name); !maps.Equal(got, want) {
			t.Errorf("%s =\n%v\nwant the devices of devices.csv:\n%v", name, got, want)
		}
	}
	if got := parseFile(t, "metadata_empty.csv"); len(got) != 0 {
		t.Errorf("metadata_empty.csv = %v, want no devices", got)
	}
	for _, name := range []string{"metadata_truncated.csv", "metadata_corrupt.json"} {
		f := openTestdata(t, name)
		if d, err := ParseMetadata(f, FormatHint{Name: name}); err == nil {
			t.Errorf("ParseMetadata(%s) = %d devices, want an error", name, d.Len())
		}
	}
}

func openTestdata(t testing.TB, name string) *os.File {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func parseFile(t testing.TB, name string) map[string]dev {
	t.Helper()
	d, err := ParseMetadata(openTestdata(t, name), FormatHint{Name: name})
	if err != nil {
		t.Fatalf("ParseMetadata(%s): %v", name, err)
	}
	return contents(t, d)
}

func TestLookup(t *testing.T) {
	d, err := ParseMetadata(openTestdata(t, "devices.csv"), FormatHint{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"", "vr-", "vr-00011", "VR-0001", "vr-0001 ", "vr-0021"} {
		if got, ok := d.Lookup(id); ok {
			t.Errorf("Lookup(%q) = %+v, want not found", id, got)
		}
	}
	var zero Devices
	var none *Devices
	for _, empty := range []*Devices{&zero, none} {
		if got, ok := empty.Lookup("vr-0001"); ok || empty.Len() != 0 || empty.Stats() != (ParseStats{}) {
			t.Errorf("empty table: Lookup = %v, %v; Len = %d; Stats = %+v", got, ok, empty.Len(), empty.Stats())
		}
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, ok := d.Lookup("vr-0017"); !ok {
			t.Fatal("Lookup(vr-0017) not found")
		}
		d.Lookup("vr-9999")
	})
	if allocs != 0 {
		t.Errorf("Lookup allocates %v times, want 0", allocs)
	}
}

// TestMetadataImmutable checks that appending to one device's Metadata
// cannot overwrite its neighbour in the shared arena.
func TestMetadataImmutable(t *testing.T) {
	d, err := ParseMetadata(strings.NewReader("id\na\nb\n"), FormatHint{})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := d.Lookup("a")
	_ = append(a.Metadata, "xxxxxxxxxxxxxxxx"...)
	if b, ok := d.Lookup("b"); !ok || string(b.Metadata) != `{"id":"b"}` {
		t.Errorf("after appending to a's Metadata, Lookup(b) = %v, %v", b, ok)
	}
}
