package enrich

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
)

// Defaults of Options' zero values.
const (
	defaultDeviceIDField   = "device_id"
	defaultEventTimeField  = "event_time"
	defaultMaxPayloadBytes = 1 << 20
)

// Options says where an event's fields are and how big it may be. The zero
// value means the defaults.
type Options struct {
	// DeviceIDField is the payload's top-level field that holds the device
	// id, a JSON string or number (a number's literal text is the id).
	// Empty means "device_id".
	DeviceIDField string
	// EventTimeField is the payload's top-level field that holds the event
	// time: an RFC 3339 string or a number of milliseconds since the Unix
	// epoch. An absent or unparseable time is not an error: the row takes
	// the publish time. Empty means "event_time".
	EventTimeField string
	// MaxPayloadBytes is the largest decoded payload accepted; 0 or less
	// means 1 MiB (1048576).
	MaxPayloadBytes int
}

// Event is what a row needs from a message's payload.
type Event struct {
	DeviceID string
	// EventTime is the payload's event time in UTC, zero when absent,
	// unparseable or outside years 1 to 9999 (BigQuery's TIMESTAMP range).
	EventTime time.Time
	// Payload is the message data: a valid JSON object, valid UTF-8.
	Payload []byte
}

// ParseEvent checks a message's payload and extracts the device id and
// event time. It does not decode the payload into Go values: it validates
// it and reads the two top-level fields' raw values. Duplicate keys resolve
// last-wins, as encoding/json does.
//
// Errors are *PermanentError with reason ReasonPayloadTooLarge,
// ReasonInvalidJSON (including invalid UTF-8), ReasonNotObject or
// ReasonMissingDeviceID (absent, null, blank, or neither a string nor a
// number).
func (o Options) ParseEvent(data []byte) (Event, error) {
	limit := o.MaxPayloadBytes
	if limit <= 0 {
		limit = defaultMaxPayloadBytes
	}
	idField := orDefault(o.DeviceIDField, defaultDeviceIDField)
	timeField := orDefault(o.EventTimeField, defaultEventTimeField)
	if len(data) > limit {
		return Event{}, Permanent(ReasonPayloadTooLarge, "payload is %d bytes, limit %d", len(data), limit)
	}
	idRaw, timeRaw, ok := eventFields(data, idField, timeField)
	if !ok {
		return Event{}, payloadError(data)
	}
	id, err := deviceID(idRaw, idField)
	if err != nil {
		return Event{}, err
	}
	return Event{DeviceID: id, EventTime: eventTime(timeRaw), Payload: data}, nil
}

// eventFields returns the raw values of the members of data named idField
// and timeField, nil when absent (the last one wins, as in encoding/json).
// It reads data once, checking its syntax as valid does while it finds the
// members; ok is false if data is not a valid JSON object (see
// payloadError).
func eventFields(data []byte, idField, timeField string) (idRaw, timeRaw []byte, ok bool) {
	r, ok := openObject(data, skipSpace(data, 0), 1)
	for ok {
		var key, value []byte
		if key, value, ok = r.nextMember(); !ok || key == nil {
			break
		}
		if keyIs(key, idField) {
			idRaw = value
		}
		if keyIs(key, timeField) {
			timeRaw = value
		}
	}
	return idRaw, timeRaw, ok && skipSpace(data, r.i) == len(data)
}

// payloadError says why data, which eventFields refused, is not a JSON
// object.
func payloadError(data []byte) error {
	switch {
	case len(data) == 0:
		return Permanent(ReasonInvalidJSON, "payload is empty")
	case !valid(data):
		if json.Valid(data) {
			return Permanent(ReasonInvalidJSON, "payload is not valid UTF-8")
		}
		return Permanent(ReasonInvalidJSON, "payload is not valid JSON")
	}
	return Permanent(ReasonNotObject, "payload is a JSON %s, want an object", kindOf(data[skipSpace(data, 0)]))
}

// orDefault returns s, or def when s is empty.
func orDefault[S ~string](s, def S) S {
	if s == "" {
		return def
	}
	return s
}

// deviceID returns the id held by raw, the id field's raw value (nil when
// absent).
func deviceID(raw []byte, field string) (string, error) {
	if raw == nil {
		return "", Permanent(ReasonMissingDeviceID, "payload has no %q field", field)
	}
	var id string
	switch raw[0] {
	case '"':
		id, _ = unquote(raw)
	case 't', 'f', 'n', '{', '[':
		return "", Permanent(ReasonMissingDeviceID, "payload field %q is a JSON %s, want a string or number", field, kindOf(raw[0]))
	default:
		id = string(raw)
	}
	if strings.TrimSpace(id) == "" {
		return "", Permanent(ReasonMissingDeviceID, "payload field %q is blank", field)
	}
	return id, nil
}

// Bounds of BigQuery's TIMESTAMP, in milliseconds since the Unix epoch.
const (
	minEventMillis = -62135596800000 // 0001-01-01T00:00:00Z
	maxEventMillis = 253402300799999 // 9999-12-31T23:59:59.999Z
)

// eventTime parses the event time field's raw value: an RFC 3339 string or
// epoch milliseconds. It returns the zero time when raw is absent or not a
// time.
func eventTime(raw []byte) time.Time {
	if len(raw) == 0 {
		return time.Time{}
	}
	var t time.Time
	switch c := raw[0]; {
	case c == '"':
		// UnmarshalJSON parses RFC 3339 straight from the quoted bytes.
		if err := t.UnmarshalJSON(raw); err != nil {
			s, _ := unquote(raw) // escaped characters: rare
			if t, err = time.Parse(time.RFC3339Nano, s); err != nil {
				return time.Time{}
			}
		}
	case c == '-' || c >= '0' && c <= '9':
		if ms, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
			if ms < minEventMillis || ms > maxEventMillis {
				return time.Time{}
			}
			return time.UnixMilli(ms).UTC()
		}
		ms, err := strconv.ParseFloat(string(raw), 64)
		if err != nil || ms < minEventMillis || ms > maxEventMillis {
			return time.Time{}
		}
		sec := math.Floor(ms / 1000)
		return time.Unix(int64(sec), int64(math.Round((ms-sec*1000)*1e6))).UTC()
	default:
		return time.Time{}
	}
	if t = t.UTC(); t.Year() < 1 || t.Year() > 9999 {
		return time.Time{}
	}
	return t
}
