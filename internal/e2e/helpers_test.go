package e2e

import (
	"bytes"
	"net/http/httptest"
	"testing"

	"github.com/devicestream/enrichevent/enrich"
)

// The tests below check the harness's own pieces, without the emulator.

func TestMediaObject(t *testing.T) {
	for _, tc := range []struct {
		method, url string
		want        string
		ok          bool
	}{
		{"GET", "/storage/v1/b/bkt/o/s1%2Fdevices.csv?alt=media&generation=12", "s1/devices.csv", true},
		{"GET", "/download/storage/v1/b/bkt/o/devices.csv?generation=12", "devices.csv", true},
		{"GET", "/storage/v1/b/bkt/o/s1%2Fdevices.csv?alt=json&prettyPrint=false", "", false},
		{"GET", "/storage/v1/b/bkt/o/s1%2Fdevices.csv", "", false},
		{"POST", "/upload/storage/v1/b/bkt/o?alt=media", "", false},
	} {
		got, ok := mediaObject(httptest.NewRequest(tc.method, tc.url, nil))
		if got != tc.want || ok != tc.ok {
			t.Errorf("mediaObject(%s %s) = %q, %v; want %q, %v", tc.method, tc.url, got, ok, tc.want, tc.ok)
		}
	}
}

func TestJSONLines(t *testing.T) {
	var b logBuffer
	b.Write([]byte("EnrichEvent listening on 127.0.0.1:1\n" +
		`{"severity":"INFO","message":"metadata loaded","generation":1795508780175248}` + "\n" +
		`{"severity":"ERROR","message":"event not processed, Pub/Sub will redeliver it","message_id":"42"}` + "\n" +
		`{"severity":"ERROR","message":"trunc`))
	lines := b.jsonLines()
	if len(lines) != 2 {
		t.Fatalf("jsonLines() = %d lines, want 2: %+v", len(lines), lines)
	}
	if got := lines[0].attr("generation"); got != "1795508780175248" {
		t.Errorf(`attr("generation") = %q, want "1795508780175248"`, got)
	}
	if got := lines[1].attr("message_id"); got != "42" {
		t.Errorf(`attr("message_id") = %q, want "42"`, got)
	}
	if got := b.count(logRedeliver, "ERROR"); got != 1 {
		t.Errorf("count(%q, ERROR) = %d, want 1", logRedeliver, got)
	}
}

// TestMetadataFiles checks the files the scenarios upload with the
// function's own parser: the good ones parse to the whole fleet, the
// truncated and the corrupt ones fail to parse, the empty one has no
// device.
func TestMetadataFiles(t *testing.T) {
	hint := enrich.FormatHint{Name: "devices.csv", ContentType: "text/csv"}
	for name, m := range map[string]metadata{"base": baseMetadata(), "moved": baseMetadata().moved(10)} {
		d, err := enrich.ParseMetadata(bytes.NewReader(m.csv()), hint)
		if err != nil || d.Len() != fleetSize {
			t.Fatalf("ParseMetadata(%s) = %v devices, %v; want %d, nil", name, d, err, fleetSize)
		}
		dev, ok := d.Lookup(deviceID(3))
		if !ok || dev.LocationID != m[deviceID(3)] {
			t.Errorf("%s: Lookup(%s) = %+v, %v; want location %s", name, deviceID(3), dev, ok, m[deviceID(3)])
		}
	}
	for name, data := range map[string][]byte{"truncated": truncatedCSV(baseMetadata()), "corrupt": corruptCSV()} {
		if d, err := enrich.ParseMetadata(bytes.NewReader(data), hint); err == nil {
			t.Errorf("ParseMetadata(%s) = %d devices, nil error; want an error", name, d.Len())
		}
	}
	if d, err := enrich.ParseMetadata(bytes.NewReader(nil), hint); err != nil || d.Len() != 0 {
		t.Errorf("ParseMetadata(empty) = %v, %v; want no device", d, err)
	}
}
