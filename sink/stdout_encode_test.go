package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // America/New_York's LMT offset, wherever the test runs

	"github.com/devicestream/enrichevent/enrich"
)

// refWriteRows is WriteRows as it was before the hand-written encoder, kept
// as the reference: encoding/json, without HTML escaping, into one buffer
// written with one Write.
func refWriteRows(s *Stdout, rows []enrich.Row) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i := range rows {
		line := struct {
			Row *enrich.Row `json:"row"`
		}{&rows[i]}
		if err := enc.Encode(line); err != nil {
			return fmt.Errorf("stdout sink: encode: %w", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("stdout sink: %w", err)
	}
	return nil
}

// refLine returns what refWriteRows writes for r alone, and its error.
func refLine(r enrich.Row) (string, error) {
	var buf bytes.Buffer
	err := refWriteRows(NewStdout(&buf), []enrich.Row{r})
	return buf.String(), err
}

// nullEmpty returns r with its empty JSON columns nil: the row whose
// encoding/json line is r's, as the stdout sink writes an empty JSON
// column as null, where encoding/json fails.
func nullEmpty(r enrich.Row) enrich.Row {
	for _, col := range []*json.RawMessage{&r.DeviceMetadata, &r.Payload, &r.Attributes} {
		if len(*col) == 0 {
			*col = nil
		}
	}
	return r
}

// checkRowLine checks that WriteRows, appendRowLine and appendRow agree
// with the reference on r, whose JSON columns are valid JSON or empty:
// the same bytes as refLine(nullEmpty(r)), or the same error, and that the
// hand-written path (appendRow) handles every row the reference accepts.
func checkRowLine(t *testing.T, r enrich.Row) {
	t.Helper()
	want, wantErr := refLine(nullEmpty(r))

	var buf bytes.Buffer
	err := NewStdout(&buf).WriteRows(context.Background(), []enrich.Row{r})
	if got := buf.String(); got != want || fmt.Sprint(err) != fmt.Sprint(wantErr) {
		t.Fatalf("WriteRows(%+v) wrote %q, %v; want %q, %v", r, got, err, want, wantErr)
	}

	const prefix = "previous line\n"
	fast, ok := appendRow([]byte(prefix), &r)
	if ok != (wantErr == nil) {
		t.Fatalf("appendRow(%+v) ok = %v, want %v (reference error %v)", r, ok, !ok, wantErr)
	}
	if want := prefix + want; string(fast) != want {
		t.Fatalf("appendRow(%+v) = %q, want %q", r, fast, want)
	}
}

// newYork is America/New_York: before 1883 its offset is -4:56:02.
var newYork = func() *time.Location {
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		panic(err)
	}
	return loc
}()

// TestRowLine compares the hand-written row line with encoding/json's on
// rows chosen for their edges.
func TestRowLine(t *testing.T) {
	base := sampleRow(1)
	with := func(f func(r *enrich.Row)) enrich.Row {
		r := base
		f(&r)
		return r
	}
	tm := func(tt time.Time) enrich.Row { return with(func(r *enrich.Row) { r.EventTime = tt }) }
	str := func(s string) enrich.Row {
		return with(func(r *enrich.Row) { r.MessageID, r.Subscription, r.TenantName = s, s, s })
	}
	raw := func(s string) enrich.Row { return with(func(r *enrich.Row) { r.Payload = json.RawMessage(s) }) }
	var controls strings.Builder
	for c := range 0x20 {
		controls.WriteByte(byte(c))
	}
	t0 := time.Date(2026, 11, 3, 10, 4, 5, 0, time.UTC)
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }

	tests := []struct {
		name    string
		row     enrich.Row
		wantErr bool
	}{
		{"sample", base, false},
		{"zero row", enrich.Row{}, false},
		{"no subscription", with(func(r *enrich.Row) { r.Subscription = "" }), false},
		{"device not found", with(func(r *enrich.Row) {
			r.DeviceFound, r.AssetTag, r.LocationID, r.TenantName, r.DeviceMetadata = false, "", "", "", nil
		}), false},
		{"extreme version", with(func(r *enrich.Row) { r.MetadataVersion = math.MinInt64 }), false},
		{"max version", with(func(r *enrich.Row) { r.MetadataVersion = math.MaxInt64 }), false},

		{"control characters", str(controls.String() + "\x7f"), false},
		{"quotes and backslashes", str(`"\"\\/`), false},
		{"html", str("<script>&amp;</script>"), false},
		{"line and paragraph separators", str("a\u2028b\u2029c\u2027\u202a"), false},
		{"invalid utf-8", str("\xff a\xc3 b\xe2\x80 \xed\xa0\x80 \xf4\x90\x80\x80 \xe2\x80\xa8"), false},
		{"valid multibyte", str("é日本\U0001F600"), false},
		{"empty strings", str(""), false},

		{"zero time", tm(time.Time{}), false},
		{"nanoseconds", tm(t0.Add(1)), false},
		{"trailing zero nanoseconds", tm(t0.Add(120 * time.Millisecond)), false},
		{"max nanoseconds", tm(t0.Add(999999999)), false},
		{"local zone", tm(t0.In(time.FixedZone("CET", 3600))), false},
		{"negative zone", tm(t0.In(time.FixedZone("", -(9*3600 + 30*60)))), false},
		{"zone of seconds", tm(t0.In(time.FixedZone("", 30))), false},
		{"negative zone of seconds", tm(t0.In(time.FixedZone("", -30))), false},
		{"LMT", tm(time.Date(1850, 1, 1, 0, 0, 0, 5, newYork)), false},
		{"zone 23:59", tm(t0.In(time.FixedZone("", 23*3600+59*60))), false},
		{"zone 24:00", tm(t0.In(time.FixedZone("", 24*3600))), true},
		{"zone -24:00", tm(t0.In(time.FixedZone("", -24*3600))), true},
		{"zone 100h", tm(t0.In(time.FixedZone("", 100*3600))), true},
		{"year 0", tm(time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)), false},
		{"year 9999", tm(time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)), false},
		{"year 10000", tm(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)), true},
		{"year -1", tm(time.Date(-1, 12, 31, 0, 0, 0, 0, time.UTC)), true},
		{"year 9999 east of UTC is 10000", tm(time.Date(9999, 12, 31, 23, 0, 0, 0, time.UTC).In(time.FixedZone("", 2*3600))), true},
		{"far future publish time", with(func(r *enrich.Row) { r.PublishTime = time.Unix(1<<60, 0) }), true},
		{"far past ingest time", with(func(r *enrich.Row) { r.IngestTime = time.Unix(-1<<60, 0) }), true},

		{"null columns", with(func(r *enrich.Row) { r.DeviceMetadata, r.Payload, r.Attributes = nil, nil, nil }), false},
		{"empty columns", with(func(r *enrich.Row) { r.DeviceMetadata, r.Payload, r.Attributes = []byte{}, nil, []byte{} }), false},
		{"indented payload", raw("{\n  \"a\": [1, 2 ,\t3],\r\n  \"b\" : { } ,\"c\":[ ]\n}\n"), false},
		{"spaces inside strings kept", raw(`{ "a b" : " c\td " }`), false},
		{"escaped quotes and spaces", raw(`{ "a\" b" : "c\\" , "d\\\"" : [ " e " ] }`), false},
		{"long strings with escapes", raw(`[ "abcdefgh \" ijklmnop\\", "qrstuvwx\\\" yz \u0022 " , "12345678\\" ]`), false},
		{"DEL in a long string", raw("\"abcdefgh\x7fijklmnop\""), false},
		{"scalars", raw(` -0.5e+10 `), false},
		{"literals", raw(`[true,false,null]`), false},
		{"escapes", raw(`"\"\\\/\b\f\n\r\t\u00e9\uD800\uABCD"`), false},
		{"separators and html in a column", raw("\"\u2028\u2029<>&\""), false},
		{"invalid utf-8 in a column", raw("\"\xff\xfe\""), false},
		{"deep nesting", raw(deep(10000)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := refLine(nullEmpty(tt.row)); (err != nil) != tt.wantErr {
				t.Fatalf("reference error = %v, want error %v", err, tt.wantErr)
			}
			checkRowLine(t, tt.row)
		})
	}
}

// TestJSONColumn documents how a JSON column is written: nil and empty as
// null, any other, trusted to be valid JSON, without its insignificant
// whitespace (what json.Compact writes) and not validated again.
func TestJSONColumn(t *testing.T) {
	tests := []struct {
		name string
		col  json.RawMessage
		want string
	}{
		{"nil", nil, `null`},
		{"empty", json.RawMessage{}, `null`},
		{"compact", json.RawMessage(`{"a":[1,"b c"],"d":null}`), `{"a":[1,"b c"],"d":null}`},
		{"indented", json.RawMessage("{\n  \"a\": [1, 2 ,\t3],\r\n  \"b\" : { }\n}\n"), `{"a":[1,2,3],"b":{}}`},
		{"spaces inside strings kept", json.RawMessage(`{ "a b" : " c\td " }`), `{"a b":" c\td "}`},
		{"escaped quotes", json.RawMessage(`[ "a\" b" , "c\\" , "d\\\" e" ]`), `["a\" b","c\\","d\\\" e"]`},
		{"long strings", json.RawMessage(`{ "abcdefghij k" : "lmnopqrstuvw\"x\\" }`), `{"abcdefghij k":"lmnopqrstuvw\"x\\"}`},
		{"scalar", json.RawMessage(" \t-1.5e+3\r\n"), `-1.5e+3`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.col) > 0 {
				var want bytes.Buffer
				if err := json.Compact(&want, tt.col); err != nil || want.String() != tt.want {
					t.Fatalf("json.Compact(%q) = %q, %v; the case wants %q", tt.col, want.String(), err, tt.want)
				}
			}
			r := sampleRow(1)
			r.Payload = tt.col
			var buf bytes.Buffer
			if err := NewStdout(&buf).WriteRows(context.Background(), []enrich.Row{r}); err != nil {
				t.Fatalf("WriteRows(payload %q) = %v", tt.col, err)
			}
			if want := `,"payload":` + tt.want + `,"attributes":`; !strings.Contains(buf.String(), want) {
				t.Errorf("WriteRows(payload %q) wrote %q, want it to contain %q", tt.col, buf.String(), want)
			}
		})
	}
}

// TestWriteRowsError checks that a row with a time that encoding/json
// cannot encode fails the whole call with encoding/json's error for that
// time, whatever its JSON columns, and that nothing is written.
func TestWriteRowsError(t *testing.T) {
	badTime := sampleRow(2)
	badTime.IngestTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	emptyPayload := badTime
	emptyPayload.Payload = json.RawMessage{} // encoding/json would fail on it first
	for _, bad := range []enrich.Row{badTime, emptyPayload} {
		var buf bytes.Buffer
		err := NewStdout(&buf).WriteRows(context.Background(), []enrich.Row{sampleRow(1), bad, sampleRow(3)})
		var merr *json.MarshalerError
		if !errors.As(err, &merr) || merr.Type != reflect.TypeFor[time.Time]() {
			t.Errorf("WriteRows with ingest time %v, payload %q = %v, want a *json.MarshalerError for time.Time",
				bad.IngestTime, bad.Payload, err)
		}
		if buf.Len() != 0 {
			t.Errorf("WriteRows with ingest time %v, payload %q wrote %q, want nothing", bad.IngestTime, bad.Payload, buf.String())
		}
	}
}

// TestWriteRowsBatch checks a call of many rows, larger than a pooled
// buffer, then a small one: the same bytes as the reference, one Write each.
func TestWriteRowsBatch(t *testing.T) {
	for _, n := range []int{1000, 3} {
		rows := make([]enrich.Row, n)
		for i := range rows {
			rows[i] = sampleRow(i)
		}
		var want bytes.Buffer
		if err := refWriteRows(NewStdout(&want), rows); err != nil {
			t.Fatal(err)
		}
		w := &countingWriter{}
		if err := NewStdout(w).WriteRows(context.Background(), rows); err != nil {
			t.Fatalf("WriteRows(%d rows) = %v", n, err)
		}
		if w.writes != 1 || !bytes.Equal(w.buf.Bytes(), want.Bytes()) {
			t.Errorf("WriteRows(%d rows): %d Writes of %d bytes, want 1 Write of the reference's %d bytes",
				n, w.writes, w.buf.Len(), want.Len())
		}
	}
}

// countingWriter counts its Writes.
type countingWriter struct {
	buf    bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.buf.Write(p)
}

// TestRowLineCoversRow fails when enrich.Row changes shape: appendRow
// writes its fields by name, and must be updated with it (the other tests
// would miss a new field that is empty and omitempty).
func TestRowLineCoversRow(t *testing.T) {
	want := []string{
		"message_id", "subscription,omitempty", "publish_time", "event_time", "device_id",
		"device_found", "asset_tag", "location_id", "tenant_name", "device_metadata", "payload",
		"attributes", "metadata_version", "metadata_loaded_at", "ingest_time",
	}
	var got []string
	typ := reflect.TypeFor[enrich.Row]()
	for i := range typ.NumField() {
		got = append(got, typ.Field(i).Tag.Get("json"))
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("enrich.Row's JSON fields are %q, appendRow writes %q: update appendRow", got, want)
	}
}

// TestAppendRowAllocs guards the hand-written path's allocation budget:
// none when the buffer is large enough.
func TestAppendRowAllocs(t *testing.T) {
	r := sampleRow(1)
	r.Payload = json.RawMessage("{\n \"a\": 1\n}")
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		if _, ok := appendRow(buf, &r); !ok {
			t.Fatal("appendRow failed")
		}
	})
	if allocs != 0 {
		t.Errorf("appendRow: %v allocations, want 0", allocs)
	}
}

// TestAppendUTC compares appendUTC with time's RFC 3339 formatting on
// every day of two 400-year Gregorian cycles (the calendar repeats every
// 400 years) and of the ends of the range, at varying times of day.
func TestAppendUTC(t *testing.T) {
	for _, years := range [][2]int{{0, 400}, {1800, 2200}, {9900, 10000}} {
		first := time.Date(years[0], 1, 1, 0, 0, 0, 0, time.UTC).Unix()
		last := time.Date(years[1], 1, 1, 0, 0, 0, 0, time.UTC).Unix() - 1
		var buf []byte
		for sec, n := first, 0; sec <= last; sec, n = sec+86400, n+1 {
			s := sec + int64(n*7919%86400)
			if n%2 == 0 {
				s = sec // midnight
			}
			nsec := []int{0, 1, 120000000, 999999999, 123456789}[n%5]
			tm := time.Unix(s, int64(nsec)).UTC()
			want := `"` + tm.Format(time.RFC3339Nano) + `"`
			if buf = appendUTC(buf[:0], s, nsec); string(buf) != want {
				t.Fatalf("appendUTC(%d, %d) = %s, want %s", s, nsec, buf, want)
			}
		}
		if buf = appendUTC(buf[:0], last, 0); !bytes.HasSuffix(buf, []byte(`-12-31T23:59:59Z"`)) {
			t.Errorf("appendUTC(%d, 0) = %s, want the last second of a year", last, buf)
		}
	}
}
