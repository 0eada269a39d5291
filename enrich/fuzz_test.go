package enrich

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf8"
)

// refEvent is ParseEvent written the slow, obvious way with encoding/json:
// the reference FuzzDecode holds it to.
func refEvent(o Options, data []byte) (id string, timeRaw json.RawMessage, reason Reason) {
	if len(data) > defaultMaxPayloadBytes {
		return "", nil, ReasonPayloadTooLarge
	}
	// Valid JSON text: a number too large for a float64 (1E700) is valid.
	if !json.Valid(data) || !utf8.Valid(data) {
		return "", nil, ReasonInvalidJSON
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil || m == nil {
		return "", nil, ReasonNotObject
	}
	raw, ok := m[orDefault(o.DeviceIDField, defaultDeviceIDField)]
	switch {
	case !ok || len(raw) == 0:
		return "", nil, ReasonMissingDeviceID
	case raw[0] == '"':
		json.Unmarshal(raw, &id)
	case raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9':
		id = string(raw)
	}
	if strings.TrimSpace(id) == "" {
		return "", nil, ReasonMissingDeviceID
	}
	return id, m[orDefault(o.EventTimeField, defaultEventTimeField)], ""
}

// refTime parses an event time the obvious way, for the cases it covers:
// RFC 3339 strings and integer milliseconds. ok is false for other values.
func refTime(raw json.RawMessage) (t time.Time, ok bool) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil || t.UTC().Year() < 1 || t.UTC().Year() > 9999 {
			return time.Time{}, true
		}
		return t.UTC(), true
	}
	if len(raw) == 0 || raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		return time.Time{}, true // absent, or neither a string nor a number
	}
	ms, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return time.Time{}, false // a float: not covered
	}
	if t = time.UnixMilli(ms).UTC(); t.Year() < 1 || t.Year() > 9999 {
		return time.Time{}, true
	}
	return t, true
}

// addFiles adds the contents of the testdata files matching pattern.
func addFiles(f *testing.F, pattern string, add func(name string, data []byte)) {
	names, err := filepath.Glob(filepath.Join("..", "testdata", pattern))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		add(filepath.Base(name), data)
	}
}

// FuzzDecode checks that DecodePush and ParseEvent never panic, that
// DecodePush returns exactly what decodePushJSON returns (its fast path
// included), that decodePushJSON agrees with encoding/json, and that
// ParseEvent finds what the reference decoder finds.
func FuzzDecode(f *testing.F) {
	for _, data := range []string{
		`{"device_id":"vr-0001","event_time":"2026-11-24T07:59:58Z","event":"session_start","battery":87}`,
		`{"device_id":42,"event_time":1764230400000}`,
		`{"a":{"device_id":"x"},"device_id":"vr-\u0030","device_id":"y"}`,
		`{"device\u005fid":" ","event_time":"2026-11-24T08:59:58.25+01:00"}`,
		`[{"device_id":"vr-0001"}]`, `{"device_id":null}`, `"x"`, ``, "\xff",
	} {
		f.Add(envelope(data), []byte(data))
	}
	addFiles(f, "requests/*.http", func(_ string, req []byte) {
		_, body, ok := bytes.Cut(req, []byte("\r\n\r\n"))
		if !ok {
			_, body, _ = bytes.Cut(req, []byte("\n\n"))
		}
		f.Add(body, []byte(`{"device_id":"vr-0001"}`))
	})
	for _, tt := range fastPathCases {
		if len(tt.body) < 1000 {
			f.Add([]byte(tt.body), []byte(`{"device_id":"vr-0001"}`))
		}
	}
	f.Fuzz(func(t *testing.T, body, data []byte) {
		checkDecodePush(t, body)
		env, err := DecodePush(body)
		var want PushEnvelope
		wantErr := json.Unmarshal(body, &want)
		var probe struct {
			Message *json.RawMessage `json:"message"` // nil when absent or null
		}
		json.Unmarshal(body, &probe)
		if (err == nil) != (wantErr == nil && probe.Message != nil) {
			t.Fatalf("DecodePush(%q) error = %v; json.Unmarshal: %v, message %s", body, err, wantErr, probe.Message)
		}
		var corrupt base64.CorruptInputError
		if reason, _ := ReasonOf(err); err != nil && (reason == ReasonBadBase64) != errors.As(wantErr, &corrupt) {
			t.Fatalf("DecodePush(%q) error = %v; json.Unmarshal: %v", body, err, wantErr)
		}
		if err == nil && !sameEnvelope(env, want) {
			t.Fatalf("DecodePush(%q) = %+v, json.Unmarshal: %+v", body, env, want)
		}
		if err == nil {
			checkEvent(t, env.Message.Data)
		}
		checkEvent(t, data)
		// Round trip: the data of an envelope built around data is data.
		env, err = DecodePush(envelope(string(data)))
		if err != nil || !bytes.Equal(env.Message.Data, data) {
			t.Fatalf("DecodePush(envelope(%q)) = %q, %v", data, env.Message.Data, err)
		}
	})
}

// checkEvent compares ParseEvent with the reference.
func checkEvent(t *testing.T, data []byte) {
	t.Helper()
	var opts Options
	ev, err := opts.ParseEvent(data)
	reason, _ := ReasonOf(err)
	id, timeRaw, wantReason := refEvent(opts, data)
	if reason != wantReason || (err == nil) != (wantReason == "") {
		t.Fatalf("ParseEvent(%q) error = %v, reference says %q", data, err, wantReason)
	}
	if err != nil {
		return
	}
	if ev.DeviceID != id || !bytes.Equal(ev.Payload, data) {
		t.Fatalf("ParseEvent(%q) = id %q, reference says %q", data, ev.DeviceID, id)
	}
	if want, ok := refTime(timeRaw); ok && !ev.EventTime.Equal(want) {
		t.Fatalf("ParseEvent(%q).EventTime = %v, reference says %v (from %s)", data, ev.EventTime, want, timeRaw)
	}
}

// FuzzParseMetadata checks that ParseMetadata never panics and that every
// table it returns is consistent: counts add up, every id looks up its
// device, and each Metadata is a JSON object whose columns agree with the
// device's fields.
func FuzzParseMetadata(f *testing.F) {
	for _, pattern := range []string{"devices*", "metadata_*"} {
		addFiles(f, pattern, func(name string, data []byte) { f.Add(data, name) })
	}
	f.Add([]byte("id,tenant_name,Device_Location_Tenant_Name\n\"a\"\"\",\"x\ny\",\xff\n"), "")
	f.Add([]byte(`{"a":{"device_id":"b","asset_tag":1.5e3,"x":[{"y":" "}]},"\u0063":{}}`), "")
	f.Add([]byte("{\"device_id\":\"a\\n\",\"TENANT_NAME\":\"t\"}\n{\"device_id\":7}"), "")
	f.Fuzz(func(t *testing.T, data []byte, name string) {
		d, err := ParseMetadata(bytes.NewReader(data), FormatHint{Name: name})
		if err != nil {
			return
		}
		s := d.Stats()
		if d.Len()+s.Blank+s.Duplicates != s.Rows || d.Len() < 0 {
			t.Fatalf("Stats() = %+v with Len() = %d: counts do not add up", s, d.Len())
		}
		if f := s.Format; (f == FormatJSON || f == FormatNDJSON) && !jsonValues(data) {
			t.Fatalf("ParseMetadata(%q) accepted %s that is not valid JSON values and UTF-8", data, f)
		}
		got := contents(t, d)
		// The same bytes read one at a time must give the same table: the
		// JSON splitter keeps its state across reads.
		d1, err := ParseMetadata(iotest.OneByteReader(bytes.NewReader(data)), FormatHint{Name: name})
		if err != nil {
			t.Fatalf("ParseMetadata one byte at a time: %v; all at once: ok", err)
		}
		if got1 := contents(t, d1); !maps.Equal(got, got1) || d1.Stats() != s {
			t.Fatalf("ParseMetadata one byte at a time = %v, %+v; all at once %v, %+v", got1, d1.Stats(), got, s)
		}
		for num := range uint32(d.stored()) {
			dev := d.device(num)
			checkDevice(t, &dev, s.Format)
		}
	})
}

// checkDevice checks that dev's Metadata is a JSON object and that its
// mapped columns hold dev's fields.
func checkDevice(t *testing.T, dev *Device, format Format) {
	t.Helper()
	var cols map[string]json.RawMessage
	if err := json.Unmarshal(dev.Metadata, &cols); err != nil || !utf8.Valid(dev.Metadata) {
		t.Fatalf("device %q: Metadata %q is not a JSON object: %v", dev.ID, dev.Metadata, err)
	}
	if strings.TrimSpace(dev.ID) == "" {
		t.Fatalf("device %q: blank id stored", dev.ID)
	}
	if depth := jsonDepth(dev.Metadata); depth > maxMetadataDepth {
		t.Fatalf("device %q: Metadata nests %d levels, more than BigQuery's JSON type takes", dev.ID, depth)
	}
	if format == FormatCSV {
		// The id is the first column named device_id, or else the first
		// column, whatever its name; it has no other role.
		key := csvIDKey(t, dev.Metadata)
		if got := trimID(text(cols[key])); got != dev.ID {
			t.Fatalf("device %q: Metadata %s has %q in its id column %q", dev.ID, dev.Metadata, got, key)
		}
		delete(cols, key)
	}
	byRole := make(map[role][]string)
	for k, v := range cols {
		byRole[roleOf(k)] = append(byRole[roleOf(k)], text(v))
	}
	if ids := byRole[roleID]; format != FormatCSV && len(ids) == 1 {
		ids[0] = trimID(ids[0])
	}
	fields := map[role]string{roleAssetTag: dev.AssetTag, roleLocationID: dev.LocationID}
	if format != FormatCSV {
		fields[roleID] = dev.ID // in CSV, checked above
	}
	if t := byRole[roleTenant]; len(t) == 0 || len(t) == 1 && t[0] == "" {
		fields[roleTenantName] = dev.TenantName
	} else {
		fields[roleTenant] = dev.TenantName
	}
	for r, want := range fields {
		if got := byRole[r]; len(got) == 1 && got[0] != want {
			t.Fatalf("device %q: Metadata %s has %q for role %d, the field is %q", dev.ID, dev.Metadata, got[0], r, want)
		}
	}
}

// csvIDKey returns the key of a CSV device's id column in its metadata,
// obj: the first key named device_id (ASCII case ignored), else the first
// key. Every value of a CSV device is a string.
func csvIDKey(t *testing.T, obj []byte) string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(obj))
	if _, err := dec.Token(); err != nil { // {
		t.Fatalf("Metadata %q: %v", obj, err)
	}
	var first string
	for i := 0; dec.More(); i++ {
		key, err := dec.Token()
		if err != nil {
			t.Fatalf("Metadata %q: %v", obj, err)
		}
		k, _ := key.(string)
		if i == 0 {
			first = k
		}
		if roleOf(k) == roleID {
			return k
		}
		if _, err := dec.Token(); err != nil { // the string value
			t.Fatalf("Metadata %q: %v", obj, err)
		}
	}
	return first
}

// trimID is an id without the spaces the parser drops around it.
func trimID(id string) string { return strings.Trim(id, " \t\r\n") }

// text returns a JSON string's contents or a number's literal, else "".
func text(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	if v[0] == '-' || v[0] >= '0' && v[0] <= '9' {
		return string(v)
	}
	return ""
}

// jsonValues reports whether data is valid UTF-8 made of JSON values
// separated by whitespace, or only whitespace: what a JSON or NDJSON file
// the parser accepts must be.
func jsonValues(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return errors.Is(err, io.EOF) && utf8.Valid(data)
		}
	}
}

// FuzzValid holds valid to its definition.
func FuzzValid(f *testing.F) {
	for _, s := range []string{`{"a":[1,-0.5e+3,true,false,null,"\u00e9\n"]}`, `[]`, ` 0 `, `"\ud800"`, "\"\xff\"", `01`, `1.`, `-`, `{"a" 1}`, `[1,]`, `nul`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, d []byte) {
		if got, want := valid(d), json.Valid(d) && utf8.Valid(d); got != want {
			t.Fatalf("valid(%q) = %v, want %v", d, got, want)
		}
	})
}

// jsonDepth returns how deep the JSON value b nests (1 for an object of
// scalars).
func jsonDepth(b []byte) int {
	d := json.NewDecoder(bytes.NewReader(b))
	depth, most := 0, 0
	for {
		tok, err := d.Token()
		if err != nil {
			return most
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			most = max(most, depth)
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}
