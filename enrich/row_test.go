package enrich

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestBuildRow(t *testing.T) {
	publish := time.Date(2026, 11, 24, 8, 0, 0, 123e6, time.UTC)
	eventAt := time.Date(2026, 11, 24, 7, 59, 58, 0, time.UTC)
	loaded := time.Date(2026, 11, 24, 7, 0, 0, 0, time.FixedZone("CET", 3600))
	now := time.Date(2026, 11, 24, 9, 0, 1, 0, time.FixedZone("CET", 3600))
	env := &PushEnvelope{
		Message: Message{
			Data:        []byte(`{"device_id":"vr-0001"}`),
			Attributes:  map[string]string{"origin": "headset", "b\"k": "v\n", "a": ""},
			MessageID:   "1001",
			PublishTime: publish,
		},
		Subscription: "projects/demo/subscriptions/s",
	}
	device := &Device{ID: "vr-0001", AssetTag: "AT-1", LocationID: "LOC-1", TenantName: "Acme",
		Metadata: json.RawMessage(`{"device_id":"vr-0001","asset_tag":"AT-1"}`)}
	meta := MetaInfo{Version: 1764000000123456, LoadedAt: loaded}
	payload := json.RawMessage(`{"device_id":"vr-0001"}`)
	attrs := json.RawMessage(`{"a":"","b\"k":"v\n","origin":"headset"}`)
	base := Row{
		MessageID:        "1001",
		Subscription:     "projects/demo/subscriptions/s",
		PublishTime:      publish,
		EventTime:        eventAt,
		DeviceID:         "vr-0001",
		Payload:          payload,
		Attributes:       attrs,
		MetadataVersion:  1764000000123456,
		MetadataLoadedAt: loaded.UTC(),
		IngestTime:       now.UTC(),
	}
	known := base
	known.DeviceFound = true
	known.AssetTag, known.LocationID, known.TenantName = "AT-1", "LOC-1", "Acme"
	known.DeviceMetadata = device.Metadata
	noTime := known
	noTime.EventTime = publish
	noAttrs := *env
	noAttrs.Message.Attributes = nil
	noAttrsRow := known
	noAttrsRow.Attributes = json.RawMessage(`{}`)

	tests := []struct {
		name string
		env  *PushEnvelope
		ev   Event
		dev  *Device
		want Row
	}{
		{"known device", env, Event{DeviceID: "vr-0001", EventTime: eventAt, Payload: payload}, device, known},
		{"unknown device", env, Event{DeviceID: "vr-0001", EventTime: eventAt, Payload: payload}, nil, base},
		{"no event time: publish time", env, Event{DeviceID: "vr-0001", Payload: payload}, device, noTime},
		{"no attributes", &noAttrs, Event{DeviceID: "vr-0001", EventTime: eventAt, Payload: payload}, device, noAttrsRow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := BuildRow(tt.env, tt.ev, tt.dev, meta, now)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("BuildRow(%s) =\n%+v\nwant\n%+v", tt.name, got, tt.want)
			}
			if !json.Valid(got.Attributes) {
				t.Errorf("BuildRow(%s).Attributes = %s, not JSON", tt.name, got.Attributes)
			}
			var back map[string]string
			if err := json.Unmarshal(got.Attributes, &back); err != nil || len(back) != len(tt.env.Message.Attributes) ||
				(len(back) > 0 && !maps.Equal(back, tt.env.Message.Attributes)) {
				t.Errorf("BuildRow(%s).Attributes = %s, decodes to %v, %v, want %v", tt.name, got.Attributes, back, err, tt.env.Message.Attributes)
			}
			if _, err := json.Marshal(got); err != nil {
				t.Errorf("json.Marshal(BuildRow(%s)): %v", tt.name, err)
			}
		})
	}
}

// TestAttributesJSON checks the attribute encoder against encoding/json,
// beyond the stack array of keys and with characters that need escaping.
func TestAttributesJSON(t *testing.T) {
	attrs := map[string]string{"ctl": "\x00\x1f\t\r\n", "quote\"\\": "<&>", "utf8": "é€😀", "bad": "\xff"}
	for i := range 12 {
		attrs[fmt.Sprint("k", i)] = fmt.Sprint(i)
	}
	got := attributesJSON(attrs)
	want, _ := json.Marshal(attrs) // sorted keys, the same escapes but HTML ones
	var g, w map[string]string
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("attributesJSON(%q) = %s: %v", attrs, got, err)
	}
	json.Unmarshal(want, &w)
	if !maps.Equal(g, w) {
		t.Errorf("attributesJSON(%q) = %s, want %s", attrs, got, want)
	}
}

func TestNewErrorRecord(t *testing.T) {
	now := time.Date(2026, 11, 24, 9, 0, 1, 0, time.FixedZone("CET", 3600))
	env := &PushEnvelope{
		Message:      Message{Data: []byte("hello"), Attributes: map[string]string{"k": "v"}, MessageID: "1002"},
		Subscription: "projects/demo/subscriptions/s",
	}
	perm := Permanent(ReasonInvalidJSON, "payload is not valid JSON")
	tests := []struct {
		name string
		env  *PushEnvelope
		raw  []byte
		err  error
		want ErrorRecord
	}{
		{"message data", env, []byte("hello"), perm, ErrorRecord{
			Timestamp: now.UTC(), Payload: []byte("hello"), Attributes: map[string]string{"k": "v"},
			MessageID: "1002", Subscription: "projects/demo/subscriptions/s",
			Reason: ReasonInvalidJSON, ErrorMessage: "invalid_json: payload is not valid JSON"}},
		{"nil raw means the data", env, nil, fmt.Errorf("wrapped: %w", perm), ErrorRecord{
			Timestamp: now.UTC(), Payload: []byte("hello"), Attributes: map[string]string{"k": "v"},
			MessageID: "1002", Subscription: "projects/demo/subscriptions/s",
			Reason: ReasonInvalidJSON, ErrorMessage: "wrapped: invalid_json: payload is not valid JSON"}},
		{"whole body, no envelope", nil, []byte("not an envelope"), Permanent(ReasonInvalidEnvelope, "push envelope: bad"), ErrorRecord{
			Timestamp: now.UTC(), Payload: []byte("not an envelope"),
			Reason: ReasonInvalidEnvelope, ErrorMessage: "invalid_envelope: push envelope: bad"}},
		{"not a permanent error", &PushEnvelope{}, []byte("x"), errors.New("boom"), ErrorRecord{
			Timestamp: now.UTC(), Payload: []byte("x"), ErrorMessage: "boom"}},
		{"a long message cut", &PushEnvelope{}, []byte("x"), Permanent(ReasonWrongEventType, "types %q", strings.Repeat("é", 3000)), ErrorRecord{
			Timestamp: now.UTC(), Payload: []byte("x"), Reason: ReasonWrongEventType,
			ErrorMessage: "wrong_event_type: types \"" + strings.Repeat("é", (maxErrorMessage-len(" … (cut)")-len("wrong_event_type: types \""))/2) + " … (cut)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NewErrorRecord(tt.env, tt.raw, tt.err, now); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("NewErrorRecord(%v) =\n%+v\nwant\n%+v", tt.err, got, tt.want)
			}
		})
	}
}
