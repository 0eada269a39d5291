package sink

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/devicestream/enrichevent/enrich"
)

// FuzzStdoutRow holds the stdout sink's hand-written row line to
// encoding/json's (refWriteRows, see checkRowLine) on rows built from
// fuzzed strings, JSON columns, times, zones and numbers: the same bytes or
// the same error, and the hand-written path handles every row the
// reference accepts.
//
// The JSON columns are trusted to be valid JSON, as enrich.BuildRow's are:
// a fuzzed column that is not (and not empty) is replaced by validJSON's
// JSON string of its bytes. flags: bits 0-2 make device_metadata, payload
// and attributes nil; bits 3-6 make the four times the zero time.Time.
// zone: 0 is UTC, 1 is America/New_York (LMT before 1883), anything else a
// fixed offset of zone % 200h seconds.
func FuzzStdoutRow(f *testing.F) {
	r := sampleRow(1)
	sec, nsec := r.PublishTime.Unix(), int64(r.PublishTime.Nanosecond())
	add := func(s string, raw []byte, sec, zone int64, flags uint8) {
		f.Add(s, r.Subscription, r.DeviceID, s, r.LocationID, s,
			[]byte(r.DeviceMetadata), raw, []byte(r.Attributes),
			sec, sec-1, sec-3600, sec+1, nsec, zone, flags, r.MetadataVersion, true)
	}
	add("m1", r.Payload, sec, 0, 0)
	add("", nil, 0, 1, 0x7f)
	add("\x00\x1f\x7f\"\\<>&\u2028\u2029\xff\xe2\x80", []byte("\"\u2028\xff<>&\""), sec, 3600, 0)
	add("é", []byte("{\n  \"a\" : [ 1 , 2 ]\r\n}\t"), -7e9, 1, 0)
	add("x", []byte(`{"a":}`), sec, -30, 0)
	add("x", []byte{}, sec, 0, 0)
	add("x", []byte(`[1,2]`), 253402300799, 7200, 0) // 9999-12-31T23:59:59Z, in +02:00
	add("x", []byte(`1`), -62167219200, 0, 0)        // year 0
	add("x", []byte(`2`), 1<<60, 24*3600, 0)

	f.Fuzz(func(t *testing.T, msgID, sub, devID, asset, loc, tenant string,
		meta, payload, attrs []byte, pub, ev, loaded, ingest, nsec, zone int64,
		flags uint8, version int64, found bool) {
		where := time.UTC
		switch zone {
		case 0:
		case 1:
			where = newYork
		default:
			where = time.FixedZone("", int(zone%(200*3600)))
		}
		tm := func(sec int64, bit uint8) time.Time {
			if flags&(1<<bit) != 0 {
				return time.Time{}
			}
			return time.Unix(sec, nsec%(2*1e9)).In(where)
		}
		raw := func(b []byte, bit uint8) json.RawMessage {
			if flags&(1<<bit) != 0 {
				return nil
			}
			if b == nil {
				b = []byte{}
			}
			return validJSON(b)
		}
		row := enrich.Row{
			MessageID: msgID, Subscription: sub,
			PublishTime: tm(pub, 3), EventTime: tm(ev, 4),
			DeviceID: devID, DeviceFound: found,
			AssetTag: asset, LocationID: loc, TenantName: tenant,
			DeviceMetadata: raw(meta, 0), Payload: raw(payload, 1), Attributes: raw(attrs, 2),
			MetadataVersion:  version,
			MetadataLoadedAt: tm(loaded, 5), IngestTime: tm(ingest, 6),
		}
		checkRowLine(t, row)
	})
}

// validJSON returns b when it is empty or valid JSON, and otherwise the
// JSON string of its bytes, so that a fuzzed JSON column keeps the
// fuzzer's bytes but is valid.
func validJSON(b []byte) json.RawMessage {
	if len(b) == 0 || json.Valid(b) {
		return b
	}
	s, err := json.Marshal(string(b))
	if err != nil {
		panic(err) // a string always marshals
	}
	return s
}

// FuzzCompactJSON holds appendRawJSON and enrich.AppendCompact, its compactor, to
// json.Compact on valid JSON (what encoding/json writes for a non-nil
// json.RawMessage when it does not escape HTML), and hasSpace to a byte
// loop. Invalid JSON, which the stdout sink does not get, is only written
// without a panic.
func FuzzCompactJSON(f *testing.F) {
	for _, s := range []string{
		`{"a":[1,-0.5e+3,true,false,null,"\u00e9\n"]}`, " [ ] ", ` 0 `, `"\ud800"`, "\"\xff\u2028\"",
		"{\n\t\"a\" :\r 1 }\n", "\t[1,\t2]", `[[[]]]`, "\"abcdefgh\x7fijklmnop\"", `{ "a\" b" : "c\\" , "d\\\"" : [ " e " ] }`,
		`[ "abcdefgh \" ijklmnop\\", "qrstuvwx\\\" yz " , "12345678\\" ]`,
		`01`, `{"a" 1}`, `"a`, `"abc\`, "\"abcdefgh\x1fijklmnop\"", ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, d []byte) {
		spaced := false
		for _, c := range d {
			spaced = spaced || c <= ' '
		}
		if hasSpace(d) != spaced {
			t.Fatalf("hasSpace(%q) = %v, want %v", d, !spaced, spaced)
		}
		enrich.AppendCompact(nil, d)
		if !json.Valid(d) {
			t.Skip("not valid JSON")
		}
		const prefix = "x"
		want := bytes.NewBufferString(prefix)
		if err := json.Compact(want, d); err != nil {
			t.Fatalf("json.Compact(%q) = %v for valid JSON", d, err)
		}
		if got := appendRawJSON([]byte(prefix), d); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("appendRawJSON(%q) = %q, want %q", d, got, want)
		}
		if got := enrich.AppendCompact([]byte(prefix), d); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("enrich.AppendCompact(%q) = %q, want %q", d, got, want)
		}
	})
}
