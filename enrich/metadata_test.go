package enrich

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
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
	for num := range uint32(d.stored()) {
		id := d.device(num).ID
		got, ok := d.Lookup(id)
		if !ok || got.ID != id {
			t.Fatalf("Lookup(%q) = %v, %v, want that device", id, got, ok)
		}
		out[got.ID] = devOf(&got)
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
		{"CSV, no device_id column: the first is the id, names trimmed and matched case-insensitively", FormatHint{},
			"serial, Asset_Tag ,LOCATION_ID,tenant_name\r\nsn-1,AT-1,LOC-1,Acme\r\n",
			[]dev{{"sn-1", "AT-1", "LOC-1", "Acme", `{"serial":"sn-1","Asset_Tag":"AT-1","LOCATION_ID":"LOC-1","tenant_name":"Acme"}`}},
			ParseStats{FormatCSV, 1, 0, 0}},
		{"CSV, the column named device_id is the id wherever it is", FormatHint{},
			"asset_tag,serial,Device_ID\nAT-1,sn-1,vr-1\nAT-2,sn-2,\n",
			[]dev{{"vr-1", "AT-1", "", "", `{"asset_tag":"AT-1","serial":"sn-1","Device_ID":"vr-1"}`}},
			ParseStats{FormatCSV, 2, 1, 0}},
		{"CSV, columns with no name left out", FormatHint{},
			"device_id,,asset_tag, ,\nvr-1,x,AT-1,y,z\n",
			[]dev{{"vr-1", "AT-1", "", "", `{"device_id":"vr-1","asset_tag":"AT-1"}`}},
			ParseStats{FormatCSV, 1, 0, 0}},
		{"CSV, ids trimmed, metadata as written", FormatHint{},
			"device_id,asset_tag\n vr-1 ,AT-1\n\"\tvr-2\",AT-2\n",
			[]dev{
				{"vr-1", "AT-1", "", "", `{"device_id":" vr-1 ","asset_tag":"AT-1"}`},
				{"vr-2", "AT-2", "", "", `{"device_id":"\tvr-2","asset_tag":"AT-2"}`},
			}, ParseStats{FormatCSV, 2, 0, 0}},
		{"CSV, device_location_tenant_name wins over tenant_name unless empty", FormatHint{},
			"id,tenant_name,device_location_tenant_name\nd1,T,DLT\nd2,T,\n",
			[]dev{
				{"d1", "", "", "DLT", `{"id":"d1","tenant_name":"T","device_location_tenant_name":"DLT"}`},
				{"d2", "", "", "T", `{"id":"d2","tenant_name":"T","device_location_tenant_name":""}`},
			}, ParseStats{FormatCSV, 2, 0, 0}},
		{"JSON, ids trimmed, an empty device_location_tenant_name falls back", FormatHint{},
			`[{"device_id":" vr-1 ","device_location_tenant_name":"","tenant_name":"T"}]`,
			[]dev{{"vr-1", "", "", "T", `{"device_id":" vr-1 ","device_location_tenant_name":"","tenant_name":"T"}`}},
			ParseStats{FormatJSON, 1, 0, 0}},
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
  {"location_id": "L", "Device_ID": "vr-9"},
  {"device\u005fid": "vr-\u0037", "asset\u005ftag": "A\u0054"}
]`,
			[]dev{
				{"42", "7", "", "T", `{"device_id":42,"asset_tag":7,"tenant_name":"T"}`},
				{"vr-9", "", "L", "", `{"location_id":"L","Device_ID":"vr-9"}`},
				{"vr-7", "AT", "", "", `{"device\u005fid":"vr-\u0037","asset\u005ftag":"A\u0054"}`},
			}, ParseStats{FormatJSON, 6, 3, 0}},
		{"JSON empty array", FormatHint{}, ` [ ] `, nil, ParseStats{FormatJSON, 0, 0, 0}},
		{"JSON empty object", FormatHint{}, `{}`, nil, ParseStats{FormatJSON, 0, 0, 0}},
		{"NDJSON", FormatHint{Name: "devices.ndjson.gz"},
			"{\"device_id\":\"vr-1\",\"asset_tag\":\"AT-1\"}\r\n\n{\"asset_tag\":\"AT-2\", \"device_id\":2}\n{\"device_id\":\"vr-1\",\"asset_tag\":\"AT-3\"}",
			[]dev{
				{"vr-1", "AT-3", "", "", `{"device_id":"vr-1","asset_tag":"AT-3"}`},
				{"2", "AT-2", "", "", `{"asset_tag":"AT-2","device_id":2}`},
			}, ParseStats{FormatNDJSON, 3, 0, 1}},
		{"NDJSON in a .json file, as BigQuery exports", FormatHint{Name: "export.json"},
			"{\"device_id\":\"vr-1\",\"asset_tag\":\"AT-1\"}\n{\"device_id\":\"vr-2\"}\n",
			[]dev{
				{"vr-1", "AT-1", "", "", `{"device_id":"vr-1","asset_tag":"AT-1"}`},
				{"vr-2", "", "", "", `{"device_id":"vr-2"}`},
			}, ParseStats{FormatNDJSON, 2, 0, 0}},
		{"NDJSON in a .json file whose first column is a STRUCT", FormatHint{Name: "export.json"},
			"{\"meta\":{\"x\":1},\"device_id\":\"a\"}\n{\"meta\":{},\"device_id\":\"b\"}\n",
			[]dev{
				{"a", "", "", "", `{"meta":{"x":1},"device_id":"a"}`},
				{"b", "", "", "", `{"meta":{},"device_id":"b"}`},
			}, ParseStats{FormatNDJSON, 2, 0, 0}},
		{"NDJSON sniffed by a second object", FormatHint{},
			"{\"meta\":{\"x\":1}}\n{\"meta\":{},\"device_id\":\"b\"}\n",
			[]dev{{"b", "", "", "", `{"meta":{},"device_id":"b"}`}},
			ParseStats{FormatNDJSON, 2, 1, 0}},
		{"JSON keyed, several devices", FormatHint{Name: "devices.json"},
			`{"vr-1": {"asset_tag": "AT-1"}, "vr-2": {"meta": {"x": 1}}}`,
			[]dev{
				{"vr-1", "AT-1", "", "", `{"device_id":"vr-1","asset_tag":"AT-1"}`},
				{"vr-2", "", "", "", `{"device_id":"vr-2","meta":{"x":1}}`},
			}, ParseStats{FormatJSON, 2, 0, 0}},
		{"NDJSON sniffed by a non-object first value", FormatHint{},
			`{"asset_tag":"AT-1","device_id":"vr-1"}`,
			[]dev{{"vr-1", "AT-1", "", "", `{"asset_tag":"AT-1","device_id":"vr-1"}`}},
			ParseStats{FormatNDJSON, 1, 0, 0}},
		{"NDJSON by content type", FormatHint{Name: "devices", ContentType: "application/x-ndjson; charset=utf-8"},
			`{"meta":{"a":1},"device_id":"vr-1"}`,
			[]dev{{"vr-1", "", "", "", `{"meta":{"a":1},"device_id":"vr-1"}`}},
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
	// The error says where the format came from: a CSV named .json.
	_, err := ParseMetadata(openTestdata(t, "devices.csv"), FormatHint{Name: "devices.json"})
	if want := "parse metadata (json, as its name's extension or its content type says): "; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("ParseMetadata(devices.csv named devices.json) = %v, want an error starting %q", err, want)
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

// TestDevicesPointerFree checks that a table gives the garbage collector
// next to nothing to scan: no pointer per device (see Devices and
// BenchmarkGCWithTable). A table of Device structs scanned 88 bytes per
// device.
func TestDevicesPointerFree(t *testing.T) {
	const n = 10_000
	data := metadataFile(FormatCSV, n)
	runtime.GC()
	base := gcScanned()
	d, err := ParseMetadata(bytes.NewReader(data), FormatHint{})
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	perDevice := (float64(gcScanned()) - float64(base)) / n
	runtime.KeepAlive(d)
	if perDevice > 4 {
		t.Errorf("the GC scans %.1f bytes per device of a table, want at most 4", perDevice)
	}
}

// TestParseMetadataChunking reads the samples one byte at a time, so that
// every string, escape and nesting level straddles reads.
func TestParseMetadataChunking(t *testing.T) {
	for _, name := range []string{"devices.csv", "devices.json", "devices_array.json", "devices.ndjson", "devices.csv.gz"} {
		want := parseFile(t, name)
		d, err := ParseMetadata(iotest.OneByteReader(openTestdata(t, name)), FormatHint{Name: name})
		if err != nil {
			t.Fatalf("ParseMetadata(%s, one byte at a time): %v", name, err)
		}
		if got := contents(t, d); !maps.Equal(got, want) {
			t.Errorf("ParseMetadata(%s, one byte at a time) = %v, want %v", name, got, want)
		}
	}
	in := `[{"device_id":"a\\\"b","x":"\\","y":["]}\""]}, {"device_id":"c","z":{"w":"\u005c"}}]`
	want := map[string]dev{
		`a\"b`: {`a\"b`, "", "", "", `{"device_id":"a\\\"b","x":"\\","y":["]}\""]}`},
		"c":    {"c", "", "", "", `{"device_id":"c","z":{"w":"\u005c"}}`},
	}
	for _, r := range []io.Reader{strings.NewReader(in), iotest.OneByteReader(strings.NewReader(in)), iotest.HalfReader(strings.NewReader(in))} {
		d, err := ParseMetadata(r, FormatHint{})
		if err != nil {
			t.Fatalf("ParseMetadata(%s): %v", in, err)
		}
		if got := contents(t, d); !maps.Equal(got, want) {
			t.Errorf("ParseMetadata(%s) = %v, want %v", in, got, want)
		}
	}
}

// TestParseMetadataAcrossBuffers reads JSON files many times the reader's
// buffer, in whole and in pieces, so that device objects straddle the end
// of the buffered bytes (jsonStream.device reads them in the buffer when
// they are whole there, else cuts them out), one longer than the buffer.
func TestParseMetadataAcrossBuffers(t *testing.T) {
	const n = 3000
	var ndjson, array, keyed strings.Builder
	array.WriteString("[")
	keyed.WriteString("{")
	for i := range n {
		id, note := fmt.Sprintf("vr-%07d", i), fmt.Sprint("n", i)
		if i == n/2 {
			note = strings.Repeat("x", bufSize+100)
		}
		body := fmt.Sprintf(`"asset_tag":"AT-%d","location_id":"L-%d","note":%q`, i, i%7, note)
		sep := ",\n"
		if i == n-1 {
			sep = ""
		}
		fmt.Fprintf(&ndjson, "{\"device_id\":%q,%s}\n", id, body)
		fmt.Fprintf(&array, "{\"device_id\":%q,%s}%s", id, body, sep)
		fmt.Fprintf(&keyed, "%q:{%s}%s", id, body, sep)
	}
	array.WriteString("]")
	keyed.WriteString("}")
	var want map[string]dev
	for _, in := range []struct{ name, data string }{
		{"devices.ndjson", ndjson.String()}, {"devices_array.json", array.String()}, {"devices.json", keyed.String()},
	} {
		for _, r := range []io.Reader{strings.NewReader(in.data), iotest.HalfReader(strings.NewReader(in.data)),
			iotest.OneByteReader(strings.NewReader(in.data))} {
			d, err := ParseMetadata(r, FormatHint{Name: in.name})
			if err != nil {
				t.Fatalf("ParseMetadata(%s, %T): %v", in.name, r, err)
			}
			got := contents(t, d)
			if want == nil {
				want = got
			}
			if len(got) != n || !maps.Equal(got, want) {
				t.Fatalf("ParseMetadata(%s, %T) = %d devices, not those of %d from the NDJSON file", in.name, r, len(got), n)
			}
		}
	}
}

// TestParseMetadataLongRecords covers records longer than an arena block's
// free space and fields beyond what a record position can hold (64 KiB).
func TestParseMetadataLongRecords(t *testing.T) {
	long := strings.Repeat("x", 70_000)
	var in strings.Builder
	in.WriteString("device_id,note,asset_tag,location_id\n")
	want := map[string]dev{}
	for i := range 40 {
		id, note, tag, loc := fmt.Sprint("d", i), "", fmt.Sprint("AT-", i), "L"
		switch i % 4 {
		case 1:
			note = strings.Repeat("n", 3000) // longer than minFree
		case 2:
			note = long // asset_tag starts beyond 64 KiB
		case 3:
			tag = long // asset_tag longer than 64 KiB
		}
		fmt.Fprintf(&in, "%s,%s,%s,%s\n", id, note, tag, loc)
		want[id] = dev{id, tag, loc, "", fmt.Sprintf(`{"device_id":%q,"note":%q,"asset_tag":%q,"location_id":%q}`, id, note, tag, loc)}
	}
	d, err := ParseMetadata(strings.NewReader(in.String()), FormatHint{})
	if err != nil {
		t.Fatal(err)
	}
	if got := contents(t, d); !maps.Equal(got, want) {
		for id, w := range want {
			if g := got[id]; g != w {
				t.Errorf("device %s = %.80q..., want %.80q...", id, fmt.Sprint(g), fmt.Sprint(w))
			}
		}
	}
}

// TestParseMetadataLarge covers tables big enough for the index to be
// built in partitions, with duplicates spread through the file.
func TestParseMetadataLarge(t *testing.T) {
	const n = 40_000
	data := bytes.Clone(metadataFile(FormatCSV, n))
	for i := 1; i <= n; i += 97 {
		data = fmt.Appendf(data, "vr-%07d,AT-dup,,\n", i)
	}
	d, err := ParseMetadata(bytes.NewReader(data), FormatHint{})
	if err != nil {
		t.Fatal(err)
	}
	dups := (n + 96) / 97
	if got, want := d.Stats(), (ParseStats{FormatCSV, n + dups, 0, dups}); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
	got := contents(t, d)
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("vr-%07d", i)
		if tag, dup := got[id].AssetTag, (i-1)%97 == 0; (tag == "AT-dup") != dup {
			t.Fatalf("Lookup(%s).AssetTag = %q, want the last record's", id, tag)
		}
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

// TestParseMetadataPausesWhileIndexing checks that ParseMetadata lets a
// reader that is a Pauser pace the indexing after the last read: once
// every pauseEvery devices in each of the index's two passes, and never
// before the end of the file.
func TestParseMetadataPausesWhileIndexing(t *testing.T) {
	const devices = 10_000
	var csv strings.Builder
	csv.WriteString("device_id,asset_tag,location_id,tenant_name\n")
	for i := range devices {
		fmt.Fprintf(&csv, "vr-%05d,AT-%d,LOC-%d,Tenant %d\n", i, i, i%50, i%7)
	}
	r := &pausingReader{r: strings.NewReader(csv.String())}
	d, err := ParseMetadata(r, FormatHint{})
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 * (devices / pauseEvery); r.pauses != want || r.early != 0 {
		t.Errorf("Pause called %d times (%d before EOF), want %d, all after EOF", r.pauses, r.early, want)
	}
	if got, ok := d.Lookup("vr-09999"); !ok || got.AssetTag != "AT-9999" {
		t.Errorf("Lookup(vr-09999) = %+v, %v", got, ok)
	}
}

// pausingReader is a Pauser that counts its pauses, and those that came
// before it returned EOF.
type pausingReader struct {
	r             io.Reader
	eof           bool
	pauses, early int
}

func (p *pausingReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.eof = p.eof || err == io.EOF
	return n, err
}

func (p *pausingReader) Pause() {
	p.pauses++
	if !p.eof {
		p.early++
	}
}
