package sink

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/devicestream/enrichevent/enrich"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The encoders below write the protobuf wire format directly with protowire,
// against the field numbers of the table's descriptor (itself built from the
// JSON schema file). That is several times faster than filling a dynamicpb
// message and marshalling it (BenchmarkEncodeRow), and produces the same
// message (TestEncodeRowMatchesDynamicpb).
//
// Column mapping: TIMESTAMP is int64 microseconds since the epoch, JSON is
// the raw JSON text, BYTES is bytes, REPEATED RECORD is repeated nested
// messages. A NULLABLE column is left out (NULL) when its value is the zero
// value: empty string, empty JSON, zero time. REQUIRED columns are always
// written, so BigQuery rejects the row, rather than us, when one is empty.
// STRING values are made valid UTF-8 (invalid bytes become U+FFFD); JSON
// values are sent untouched and BigQuery validates them.

// rowEncoder encodes enrich.Row values as messages of the rows table.
type rowEncoder struct {
	messageID, subscription, publishTime, eventTime, deviceID, deviceFound,
	assetTag, locationID, tenantName, deviceMetadata, payload, attributes,
	metadataVersion, metadataLoadedAt, ingestTime protowire.Number
}

func newRowEncoder(md protoreflect.MessageDescriptor) (*rowEncoder, error) {
	f := newFieldBinder(md)
	e := &rowEncoder{
		messageID:        f.bind("message_id", protoreflect.StringKind),
		subscription:     f.bind("subscription", protoreflect.StringKind),
		publishTime:      f.bind("publish_time", protoreflect.Int64Kind),
		eventTime:        f.bind("event_time", protoreflect.Int64Kind),
		deviceID:         f.bind("device_id", protoreflect.StringKind),
		deviceFound:      f.bind("device_found", protoreflect.BoolKind),
		assetTag:         f.bind("asset_tag", protoreflect.StringKind),
		locationID:       f.bind("location_id", protoreflect.StringKind),
		tenantName:       f.bind("tenant_name", protoreflect.StringKind),
		deviceMetadata:   f.bind("device_metadata", protoreflect.StringKind),
		payload:          f.bind("payload", protoreflect.StringKind),
		attributes:       f.bind("attributes", protoreflect.StringKind),
		metadataVersion:  f.bind("metadata_version", protoreflect.Int64Kind),
		metadataLoadedAt: f.bind("metadata_loaded_at", protoreflect.Int64Kind),
		ingestTime:       f.bind("ingest_time", protoreflect.Int64Kind),
	}
	if err := f.finish(); err != nil {
		return nil, fmt.Errorf("rows table: %w", err)
	}
	return e, nil
}

// encode returns r as one serialized row, in a buffer of its own.
func (e *rowEncoder) encode(r *enrich.Row) []byte {
	n := 16*12 + len(r.MessageID) + len(r.Subscription) + len(r.DeviceID) +
		len(r.AssetTag) + len(r.LocationID) + len(r.TenantName) +
		len(r.DeviceMetadata) + len(r.Payload) + len(r.Attributes)
	b := make([]byte, 0, n)
	b = appendString(b, e.messageID, r.MessageID)
	b = appendOptString(b, e.subscription, r.Subscription)
	b = appendTime(b, e.publishTime, r.PublishTime)
	b = appendTime(b, e.eventTime, r.EventTime)
	b = appendString(b, e.deviceID, r.DeviceID)
	b = appendBool(b, e.deviceFound, r.DeviceFound)
	b = appendOptString(b, e.assetTag, r.AssetTag)
	b = appendOptString(b, e.locationID, r.LocationID)
	b = appendOptString(b, e.tenantName, r.TenantName)
	b = appendOptJSON(b, e.deviceMetadata, r.DeviceMetadata)
	b = appendJSON(b, e.payload, r.Payload)
	b = appendOptJSON(b, e.attributes, r.Attributes)
	b = appendInt(b, e.metadataVersion, r.MetadataVersion)
	b = appendOptTime(b, e.metadataLoadedAt, r.MetadataLoadedAt)
	b = appendTime(b, e.ingestTime, r.IngestTime)
	return b
}

// errorEncoder encodes enrich.ErrorRecord values as messages of the
// error-records table.
type errorEncoder struct {
	timestamp, payloadString, payloadBytes, attributes, errorMessage,
	stacktrace, messageID, subscription, reason protowire.Number
	key, value protowire.Number // of the attributes RECORD
}

func newErrorEncoder(md protoreflect.MessageDescriptor) (*errorEncoder, error) {
	f := newFieldBinder(md)
	e := &errorEncoder{
		timestamp:     f.bind("timestamp", protoreflect.Int64Kind),
		payloadString: f.bind("payloadString", protoreflect.StringKind),
		payloadBytes:  f.bind("payloadBytes", protoreflect.BytesKind),
		attributes:    f.bindRepeated("attributes", protoreflect.MessageKind),
		errorMessage:  f.bind("errorMessage", protoreflect.StringKind),
		stacktrace:    f.bind("stacktrace", protoreflect.StringKind),
		messageID:     f.bind("message_id", protoreflect.StringKind),
		subscription:  f.bind("subscription", protoreflect.StringKind),
		reason:        f.bind("reason", protoreflect.StringKind),
	}
	if fd := md.Fields().ByName("attributes"); fd != nil && fd.Message() != nil {
		kv := newFieldBinder(fd.Message())
		e.key = kv.bind("key", protoreflect.StringKind)
		e.value = kv.bind("value", protoreflect.StringKind)
		if err := kv.finish(); err != nil {
			f.fail(fmt.Errorf("attributes: %w", err))
		}
	}
	if err := f.finish(); err != nil {
		return nil, fmt.Errorf("error-records table: %w", err)
	}
	return e, nil
}

// encode returns r as one serialized row. The stacktrace column is left
// NULL: these are data errors, not crashes. text is payloadString:
// payloadText(r.Payload), or that cut (cutText); payloadBytes always holds
// all of r.Payload. The caller makes the text once, since a payload can be
// as large as a Pub/Sub message.
func (e *errorEncoder) encode(r *enrich.ErrorRecord, text []byte) []byte {
	n := 16*10 + len(text) + len(r.Payload) + len(r.ErrorMessage) + len(r.MessageID) +
		len(r.Subscription) + len(r.Reason)
	for k, v := range r.Attributes {
		n += len(k) + len(v) + 8
	}
	b := make([]byte, 0, n)
	b = appendTime(b, e.timestamp, r.Timestamp)
	b = protowire.AppendTag(b, e.payloadString, protowire.BytesType)
	b = protowire.AppendBytes(b, text)
	b = protowire.AppendTag(b, e.payloadBytes, protowire.BytesType)
	b = protowire.AppendBytes(b, r.Payload)
	keys := make([]string, 0, len(r.Attributes))
	for k := range r.Attributes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = e.appendAttribute(b, k, r.Attributes[k])
	}
	b = appendOptString(b, e.errorMessage, r.ErrorMessage)
	b = appendOptString(b, e.messageID, r.MessageID)
	b = appendOptString(b, e.subscription, r.Subscription)
	b = appendOptString(b, e.reason, string(r.Reason))
	return b
}

// size returns len(e.encode(r, text)) for a text of textLen bytes, without
// encoding the payload: an error record can be as large as a Pub/Sub
// message, and one too large for an append is encoded only once it has
// been cut to fit.
func (e *errorEncoder) size(r *enrich.ErrorRecord, textLen int) int {
	rest := *r
	rest.Payload = nil // written as two empty fields: a length byte each
	return len(e.encode(&rest, nil)) - 2 +
		protowire.SizeBytes(textLen) + protowire.SizeBytes(len(r.Payload))
}

// appendAttribute appends one element of the REPEATED RECORD attributes.
func (e *errorEncoder) appendAttribute(b []byte, k, v string) []byte {
	k, v = validUTF8(k), validUTF8(v)
	size := protowire.SizeTag(e.key) + protowire.SizeBytes(len(k)) +
		protowire.SizeTag(e.value) + protowire.SizeBytes(len(v))
	b = protowire.AppendTag(b, e.attributes, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	b = protowire.AppendTag(b, e.key, protowire.BytesType)
	b = protowire.AppendString(b, k)
	b = protowire.AppendTag(b, e.value, protowire.BytesType)
	return protowire.AppendString(b, v)
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, validUTF8(s))
}

func appendOptString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(b, num, s)
}

func appendJSON(b []byte, num protowire.Number, raw []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, raw)
}

func appendOptJSON(b []byte, num protowire.Number, raw []byte) []byte {
	if len(raw) == 0 {
		return b
	}
	return appendJSON(b, num, raw)
}

func appendTime(b []byte, num protowire.Number, t time.Time) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(t.UnixMicro()))
}

func appendOptTime(b []byte, num protowire.Number, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	return appendTime(b, num, t)
}

func appendInt(b []byte, num protowire.Number, v int64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

func appendBool(b []byte, num protowire.Number, v bool) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, protowire.EncodeBool(v))
}

// validUTF8 returns s, with invalid UTF-8 sequences replaced by U+FFFD:
// BigQuery rejects a row whose STRING value is not valid UTF-8.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// fieldBinder looks up the encoder's columns in a descriptor, checking their
// types, and reports every column the encoder does not fill: the schema file
// and the encoder must change together.
type fieldBinder struct {
	md   protoreflect.MessageDescriptor
	used map[protoreflect.Name]bool
	err  error
}

func newFieldBinder(md protoreflect.MessageDescriptor) *fieldBinder {
	return &fieldBinder{md: md, used: make(map[protoreflect.Name]bool)}
}

func (f *fieldBinder) bind(name string, kind protoreflect.Kind) protowire.Number {
	return f.lookup(name, kind, false)
}

func (f *fieldBinder) bindRepeated(name string, kind protoreflect.Kind) protowire.Number {
	return f.lookup(name, kind, true)
}

func (f *fieldBinder) lookup(name string, kind protoreflect.Kind, repeated bool) protowire.Number {
	fd := f.md.Fields().ByName(protoreflect.Name(name))
	switch {
	case fd == nil:
		f.fail(fmt.Errorf("schema has no column %q", name))
		return 0
	case fd.Kind() != kind || fd.IsList() != repeated:
		f.fail(fmt.Errorf("column %q is %v (repeated %v), the writer encodes %v (repeated %v)",
			name, fd.Kind(), fd.IsList(), kind, repeated))
		return 0
	}
	f.used[fd.Name()] = true
	return fd.Number()
}

func (f *fieldBinder) fail(err error) {
	if f.err == nil {
		f.err = err
	}
}

func (f *fieldBinder) finish() error {
	fields := f.md.Fields()
	for i := range fields.Len() {
		if name := fields.Get(i).Name(); !f.used[name] {
			f.fail(fmt.Errorf("column %q is in the schema but the writer does not fill it", name))
		}
	}
	return f.err
}

// payloadText is payload as the text of the payloadString column: invalid
// UTF-8 replaced by U+FFFD.
func payloadText(payload []byte) []byte {
	if utf8.Valid(payload) {
		return payload
	}
	return bytes.ToValidUTF8(payload, []byte("\uFFFD"))
}

// cutText returns text cut to at most max bytes at a character boundary,
// or text if max is negative.
func cutText[T string | []byte](text T, max int) T {
	if max < 0 || len(text) <= max {
		return text
	}
	for max > 0 && !utf8.RuneStart(text[max]) {
		max--
	}
	return text[:max]
}
