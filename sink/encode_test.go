package sink

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"github.com/devicestream/enrichevent/enrich"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// dynamicRow is the straightforward encoding of r: a dynamicpb message of
// the rows table, filled by column name, with the same NULL rules.
func dynamicRow(md protoreflect.MessageDescriptor, r *enrich.Row) *dynamicpb.Message {
	m := dynamicpb.NewMessage(md)
	set := func(name string, v protoreflect.Value) { m.Set(md.Fields().ByName(protoreflect.Name(name)), v) }
	str := func(name, s string, nullable bool) {
		if s != "" || !nullable {
			set(name, protoreflect.ValueOfString(strings.ToValidUTF8(s, "\uFFFD")))
		}
	}
	ts := func(name string, t time.Time, nullable bool) {
		if !t.IsZero() || !nullable {
			set(name, protoreflect.ValueOfInt64(t.UnixMicro()))
		}
	}
	js := func(name string, raw []byte, nullable bool) {
		if len(raw) > 0 || !nullable {
			set(name, protoreflect.ValueOfString(string(raw)))
		}
	}
	str("message_id", r.MessageID, false)
	str("subscription", r.Subscription, true)
	ts("publish_time", r.PublishTime, false)
	ts("event_time", r.EventTime, false)
	str("device_id", r.DeviceID, false)
	set("device_found", protoreflect.ValueOfBool(r.DeviceFound))
	str("asset_tag", r.AssetTag, true)
	str("location_id", r.LocationID, true)
	str("tenant_name", r.TenantName, true)
	js("device_metadata", r.DeviceMetadata, true)
	js("payload", r.Payload, false)
	js("attributes", r.Attributes, true)
	set("metadata_version", protoreflect.ValueOfInt64(r.MetadataVersion))
	ts("metadata_loaded_at", r.MetadataLoadedAt, true)
	ts("ingest_time", r.IngestTime, false)
	return m
}

func TestEncodeRowMatchesDynamicpb(t *testing.T) {
	schema, err := RowsSchema()
	if err != nil {
		t.Fatal(err)
	}
	enc, err := newRowEncoder(schema.Message)
	if err != nil {
		t.Fatal(err)
	}
	sparse := enrich.Row{MessageID: "m", DeviceID: "d"}
	odd := sampleRow(1)
	odd.AssetTag = "bad \xff utf-8"
	odd.EventTime = time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC) // negative micros
	odd.MetadataVersion = -1
	for name, r := range map[string]enrich.Row{"full": sampleRow(1), "sparse": sparse, "odd": odd} {
		got := dynamicpb.NewMessage(schema.Message)
		if err := proto.Unmarshal(enc.encode(&r), got); err != nil {
			t.Errorf("%s: encoded row does not decode: %v", name, err)
			continue
		}
		if want := dynamicRow(schema.Message, &r); !proto.Equal(got, want) {
			t.Errorf("%s: encode(%+v) decodes to\n%v\nwant\n%v", name, r, got, want)
		}
	}
}

// newTestErrorEncoder returns the error-records schema and its encoder.
func newTestErrorEncoder(t *testing.T) (*TableSchema, *errorEncoder) {
	t.Helper()
	schema, err := ErrorRecordsSchema()
	if err != nil {
		t.Fatal(err)
	}
	enc, err := newErrorEncoder(schema.Message)
	if err != nil {
		t.Fatal(err)
	}
	return schema, enc
}

// TestEncodeErrorRecordCutsText: a cut payloadString ends at a character
// boundary, and payloadBytes keeps the whole payload.
func TestEncodeErrorRecordCutsText(t *testing.T) {
	schema, enc := newTestErrorEncoder(t)
	rec := enrich.ErrorRecord{Timestamp: time.Unix(5, 0), Payload: []byte("aé\xffz"), Reason: enrich.ReasonInvalidJSON}
	for _, tc := range []struct {
		max  int
		want string
	}{
		{-1, "aé\uFFFDz"},
		{0, ""},
		{1, "a"},
		{2, "a"}, // not half of é
		{3, "aé"},
		{5, "aé"}, // not part of U+FFFD
		{6, "aé\uFFFD"},
		{100, "aé\uFFFDz"},
	} {
		m := dynamicpb.NewMessage(schema.Message)
		if err := proto.Unmarshal(enc.encode(&rec, cutText(payloadText(rec.Payload), tc.max)), m); err != nil {
			t.Fatalf("encoded record does not decode: %v", err)
		}
		fields := schema.Message.Fields()
		if got := m.Get(fields.ByName("payloadString")).String(); got != tc.want {
			t.Errorf("payloadString cut to %d bytes = %q, want %q", tc.max, got, tc.want)
		}
		if got := m.Get(fields.ByName("payloadBytes")).Bytes(); string(got) != string(rec.Payload) {
			t.Errorf("payloadBytes with payloadString cut to %d bytes = %q, want %q", tc.max, got, rec.Payload)
		}
	}
}

func TestEncodeErrorRecord(t *testing.T) {
	schema, enc := newTestErrorEncoder(t)
	rec := enrich.ErrorRecord{
		Timestamp: time.Unix(5, 0), Payload: []byte("x\xff"), Attributes: map[string]string{"z": "1", "a": "\xfe"},
		MessageID: "m", Reason: enrich.ReasonBadBase64, ErrorMessage: "boom",
	}
	m := dynamicpb.NewMessage(schema.Message)
	if err := proto.Unmarshal(enc.encode(&rec, payloadText(rec.Payload)), m); err != nil {
		t.Fatalf("encoded record does not decode: %v", err)
	}
	field := func(name string) protoreflect.Value {
		return m.Get(schema.Message.Fields().ByName(protoreflect.Name(name)))
	}
	attrs := field("attributes").List()
	kv := schema.Message.Fields().ByName("attributes").Message().Fields()
	checks := []struct {
		what      string
		got, want any
	}{
		{"timestamp", field("timestamp").Int(), int64(5_000_000)},
		{"payloadString", field("payloadString").String(), "x\uFFFD"},
		{"payloadBytes", string(field("payloadBytes").Bytes()), "x\xff"},
		{"attributes", attrs.Len(), 2},
		{"attributes[0].key", attrs.Get(0).Message().Get(kv.ByName("key")).String(), "a"},
		{"attributes[0].value", attrs.Get(0).Message().Get(kv.ByName("value")).String(), "\uFFFD"},
		{"attributes[1].key", attrs.Get(1).Message().Get(kv.ByName("key")).String(), "z"},
		{"reason", field("reason").String(), "bad_base64"},
		{"has stacktrace", m.Has(schema.Message.Fields().ByName("stacktrace")), false},
		{"has subscription", m.Has(schema.Message.Fields().ByName("subscription")), false},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("encode(%+v) %s = %#v, want %#v", rec, c.what, c.got, c.want)
		}
	}
}

func TestEncoderRejectsMismatchedSchema(t *testing.T) {
	rows, err := RowsSchema()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(bigquery.Schema) bigquery.Schema
		want   string
	}{
		{"extra column", func(s bigquery.Schema) bigquery.Schema {
			return append(s, &bigquery.FieldSchema{Name: "region", Type: bigquery.StringFieldType})
		}, `"region" is in the schema but the writer does not fill it`},
		{"missing column", func(s bigquery.Schema) bigquery.Schema { return s[1:] }, `no column "message_id"`},
		{"wrong type", func(s bigquery.Schema) bigquery.Schema {
			s[0] = &bigquery.FieldSchema{Name: "message_id", Type: bigquery.IntegerFieldType}
			return s
		}, `column "message_id" is int64`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newRowEncoder(adaptMessage(t, tt.change(officialSchema(t, rows))))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("newRowEncoder(%s) = %v, want an error containing %q", tt.name, err, tt.want)
			}
		})
	}
}

// BenchmarkEncodeRow compares the protowire encoder with filling and
// marshalling a dynamicpb message.
func BenchmarkEncodeRow(b *testing.B) {
	schema, err := RowsSchema()
	if err != nil {
		b.Fatal(err)
	}
	enc, err := newRowEncoder(schema.Message)
	if err != nil {
		b.Fatal(err)
	}
	r := sampleRow(1)
	r.Payload = json.RawMessage(`{"device_id":"dev-7","ts":"2026-11-03T10:04:04Z","temp":21.5,"humidity":40,"battery":0.93,"fw":"1.4.2","readings":[1,2,3,4,5,6,7,8]}`)
	b.Run("protowire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = enc.encode(&r)
		}
	})
	b.Run("dynamicpb", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := proto.Marshal(dynamicRow(schema.Message, &r)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestErrorRecordSize: size, which decides whether a record must be cut to
// fit an append before it is encoded, is the length of its encoding, for
// payloads whose lengths cross the varint sizes of the two payload fields
// and for payloads that are not UTF-8 (their text is shorter, or longer).
func TestErrorRecordSize(t *testing.T) {
	_, enc := newTestErrorEncoder(t)
	for _, n := range []int{0, 1, 127, 128, 16383, 16384, 1 << 21, 9_000_000} {
		for _, fill := range []string{"a", "\xff", "a\xff"} { // "a\xff": text twice as long as the payload
			rec := enrich.ErrorRecord{
				Timestamp: time.Unix(5, 0), Payload: []byte(strings.Repeat(fill, n)), Attributes: map[string]string{"k": "v"},
				MessageID: "m", Subscription: "s", Reason: enrich.ReasonInvalidJSON, ErrorMessage: "boom",
			}
			text := payloadText(rec.Payload)
			if got, want := enc.size(&rec, len(text)), len(enc.encode(&rec, text)); got != want {
				t.Errorf("size of a record with %d × %q = %d, want %d (its encoding's length)", n, fill, got, want)
			}
		}
	}
}
