package enrich

import (
	"encoding/json"
	"slices"
	"time"
	"unicode/utf8"
)

// Row is one enriched event, shaped like the rows table
// (sink/schema/rows.json). JSON columns hold raw JSON text.
type Row struct {
	MessageID        string          `json:"message_id"`
	Subscription     string          `json:"subscription,omitempty"`
	PublishTime      time.Time       `json:"publish_time"`
	EventTime        time.Time       `json:"event_time"`
	DeviceID         string          `json:"device_id"`
	DeviceFound      bool            `json:"device_found"`
	AssetTag         string          `json:"asset_tag"`
	LocationID       string          `json:"location_id"`
	TenantName       string          `json:"tenant_name"`
	DeviceMetadata   json.RawMessage `json:"device_metadata"`
	Payload          json.RawMessage `json:"payload"`
	Attributes       json.RawMessage `json:"attributes"`
	MetadataVersion  int64           `json:"metadata_version"`
	MetadataLoadedAt time.Time       `json:"metadata_loaded_at"`
	IngestTime       time.Time       `json:"ingest_time"`
}

// ErrorRecord is a message that can never become a row, shaped like the
// error-records table (sink/schema/error_records.json), whose columns match
// the dead-letter table of Google's Dataflow Pub/Sub-to-BigQuery template.
type ErrorRecord struct {
	Timestamp    time.Time         `json:"timestamp"`
	Payload      []byte            `json:"payload"` // the raw bytes: message data, or the whole body if it did not decode
	Attributes   map[string]string `json:"attributes,omitempty"`
	MessageID    string            `json:"message_id,omitempty"`
	Subscription string            `json:"subscription,omitempty"`
	Reason       Reason            `json:"reason"`
	ErrorMessage string            `json:"error_message"`
}

// MetaInfo describes the metadata version a row was enriched with.
type MetaInfo struct {
	Version  int64     // GCS generation, or the local file's version
	LoadedAt time.Time // when that version was loaded
}

// BuildRow builds the row of event ev from message env, joined with device
// dev. A nil dev is an unknown device: the row has DeviceFound false, empty
// location columns and null DeviceMetadata. Attributes become a JSON object
// ({} when there are none) with sorted keys; the event time falls back to
// the publish time. Times are in UTC.
func BuildRow(env *PushEnvelope, ev Event, dev *Device, meta MetaInfo, now time.Time) Row {
	row := Row{
		MessageID:        env.Message.MessageID,
		Subscription:     env.Subscription,
		PublishTime:      env.Message.PublishTime.UTC(),
		EventTime:        ev.EventTime.UTC(),
		DeviceID:         ev.DeviceID,
		Payload:          ev.Payload,
		Attributes:       env.Message.attributesJSON,
		MetadataVersion:  meta.Version,
		MetadataLoadedAt: meta.LoadedAt.UTC(),
		IngestTime:       now.UTC(),
	}
	if row.Attributes == nil {
		row.Attributes = attributesJSON(env.Message.Attributes)
	}
	if ev.EventTime.IsZero() {
		row.EventTime = row.PublishTime
	}
	if dev != nil {
		row.DeviceFound = true
		row.AssetTag = dev.AssetTag
		row.LocationID = dev.LocationID
		row.TenantName = dev.TenantName
		row.DeviceMetadata = dev.Metadata
	}
	return row
}

// attributesJSON returns attrs as a JSON object with sorted keys.
func attributesJSON(attrs map[string]string) json.RawMessage {
	if len(attrs) == 0 {
		return json.RawMessage("{}")
	}
	var stack [8]string
	keys := stack[:0]
	size := 2
	for k, v := range attrs {
		keys = append(keys, k)
		size += len(k) + len(v) + 6
	}
	slices.Sort(keys)
	out := make([]byte, 0, size)
	out = append(out, '{')
	for i, k := range keys {
		if i > 0 {
			out = append(out, ',')
		}
		out, _ = appendString(out, k)
		out = append(out, ':')
		out, _ = appendString(out, attrs[k])
	}
	return append(out, '}')
}

// NewErrorRecord builds the error record of a message that failed
// permanently with err. raw is the payload to keep: the message data, or
// the whole request body when the envelope did not decode; nil means
// env's data. env may be nil. The reason is err's Reason, empty when err is
// not a *PermanentError.
func NewErrorRecord(env *PushEnvelope, raw []byte, err error, now time.Time) ErrorRecord {
	rec := ErrorRecord{Timestamp: now.UTC(), Payload: raw}
	if env != nil {
		rec.Attributes = env.Message.Attributes
		rec.MessageID = env.Message.MessageID
		rec.Subscription = env.Subscription
		if raw == nil {
			rec.Payload = env.Message.Data
		}
	}
	if err != nil {
		rec.Reason, _ = ReasonOf(err)
		rec.ErrorMessage = cutMessage(err.Error())
	}
	return rec
}

// maxErrorMessage bounds an error record's message: it is for people, and
// a message may quote what the request carried (a CloudEvent's type comes
// from a header of up to 1 MB), which the payload column already holds.
const maxErrorMessage = 4 << 10

// cutMessage cuts msg to at most maxErrorMessage bytes, at a character
// boundary, and says so.
func cutMessage(msg string) string {
	if len(msg) <= maxErrorMessage {
		return msg
	}
	const note = " … (cut)"
	n := maxErrorMessage - len(note)
	for n > 0 && !utf8.RuneStart(msg[n]) {
		n--
	}
	return msg[:n] + note
}
