package enrich

import (
	"strings"
	"testing"
	"time"
)

func TestParseEvent(t *testing.T) {
	at := time.Date(2026, 11, 24, 7, 59, 58, 0, time.UTC)
	custom := Options{DeviceIDField: "serial", EventTimeField: "ts", MaxPayloadBytes: 64}
	tests := []struct {
		name   string
		opts   Options
		data   string
		id     string
		time   time.Time
		reason Reason // "" means no error
	}{
		{"string id and RFC 3339 time", Options{}, `{"device_id":"vr-0001","event_time":"2026-11-24T07:59:58Z","battery":87}`, "vr-0001", at, ""},
		{"whitespace", Options{}, " \n{ \"event_time\" : \"2026-11-24T07:59:58Z\" ,\t\"device_id\" :\r\n\"vr-0001\" } \n", "vr-0001", at, ""},
		{"nested values skipped", Options{}, `{"a":{"device_id":"inner","b":[1,{"c":"}"}]},"s":"\"device_id\":","device_id":"vr-0002"}`, "vr-0002", time.Time{}, ""},
		{"integer id", Options{}, `{"device_id":42}`, "42", time.Time{}, ""},
		{"number id keeps its text", Options{}, `{"device_id":-1.50e3}`, "-1.50e3", time.Time{}, ""},
		{"escaped id", Options{}, `{"device_id":"vr-\u0030001\t"}`, "vr-0001\t", time.Time{}, ""},
		{"escaped key", Options{}, `{"device\u005fid":"vr-0003"}`, "vr-0003", time.Time{}, ""},
		{"non-ASCII id", Options{}, `{"device_id":"casque-é-1"}`, "casque-é-1", time.Time{}, ""},
		{"duplicate key: last wins", Options{}, `{"device_id":"a","device_id":"b"}`, "b", time.Time{}, ""},
		{"key match is exact", Options{}, `{"Device_ID":"a","device_id":"b"}`, "b", time.Time{}, ""},
		{"RFC 3339 with offset and fraction", Options{}, `{"device_id":"x","event_time":"2026-11-24T08:59:58.250+01:00"}`, "x", at.Add(250 * time.Millisecond), ""},
		{"escaped time", Options{}, `{"device_id":"x","event_time":"2026-11-24T07:59:58\u005a"}`, "x", at, ""},
		{"epoch millis", Options{}, `{"device_id":"x","event_time":1795507198000}`, "x", at, ""},
		{"epoch millis as float", Options{}, `{"device_id":"x","event_time":1.7955071985e12}`, "x", at.Add(500 * time.Millisecond), ""},
		{"negative epoch millis", Options{}, `{"device_id":"x","event_time":-1000}`, "x", time.Unix(-1, 0).UTC(), ""},
		{"time absent", Options{}, `{"device_id":"x"}`, "x", time.Time{}, ""},
		{"time not a time", Options{}, `{"device_id":"x","event_time":"yesterday"}`, "x", time.Time{}, ""},
		{"time null", Options{}, `{"device_id":"x","event_time":null}`, "x", time.Time{}, ""},
		{"time an object", Options{}, `{"device_id":"x","event_time":{"s":1}}`, "x", time.Time{}, ""},
		{"time past year 9999", Options{}, `{"device_id":"x","event_time":253402300800000}`, "x", time.Time{}, ""},
		{"time before year 1 in UTC", Options{}, `{"device_id":"x","event_time":"0001-01-01T00:30:00+01:00"}`, "x", time.Time{}, ""},
		{"time overflows int64", Options{}, `{"device_id":"x","event_time":1e300}`, "x", time.Time{}, ""},
		{"custom fields", custom, `{"device_id":"no","serial":"sn-9","ts":1795507198000}`, "sn-9", at, ""},
		{"same field for both", Options{DeviceIDField: "t", EventTimeField: "t"}, `{"t":1795507198000}`, "1795507198000", at, ""},

		{"too large", custom, `{"serial":"sn-9","padding":"` + strings.Repeat("x", 64) + `"}`, "", time.Time{}, ReasonPayloadTooLarge},
		{"default limit", Options{}, `{"device_id":"x","p":"` + strings.Repeat("x", 1<<20) + `"}`, "", time.Time{}, ReasonPayloadTooLarge},
		{"empty", Options{}, ``, "", time.Time{}, ReasonInvalidJSON},
		{"not JSON", Options{}, `device vr-0001 says hello`, "", time.Time{}, ReasonInvalidJSON},
		{"truncated", Options{}, `{"device_id":"vr-0001"`, "", time.Time{}, ReasonInvalidJSON},
		{"trailing data", Options{}, `{"device_id":"vr-0001"} {}`, "", time.Time{}, ReasonInvalidJSON},
		{"binary", Options{}, "\x00\x07\x0e\x15", "", time.Time{}, ReasonInvalidJSON},
		{"invalid UTF-8", Options{}, "{\"device_id\":\"vr-\xff\"}", "", time.Time{}, ReasonInvalidJSON},
		{"array", Options{}, `[{"device_id":"vr-0001"}]`, "", time.Time{}, ReasonNotObject},
		{"string", Options{}, ` "vr-0001"`, "", time.Time{}, ReasonNotObject},
		{"number", Options{}, `42`, "", time.Time{}, ReasonNotObject},
		{"null", Options{}, `null`, "", time.Time{}, ReasonNotObject},
		{"no id", Options{}, `{"event":"heartbeat"}`, "", time.Time{}, ReasonMissingDeviceID},
		{"empty object", Options{}, `{}`, "", time.Time{}, ReasonMissingDeviceID},
		{"empty id", Options{}, `{"device_id":""}`, "", time.Time{}, ReasonMissingDeviceID},
		{"blank id", Options{}, `{"device_id":" \t"}`, "", time.Time{}, ReasonMissingDeviceID},
		{"null id", Options{}, `{"device_id":null}`, "", time.Time{}, ReasonMissingDeviceID},
		{"boolean id", Options{}, `{"device_id":true}`, "", time.Time{}, ReasonMissingDeviceID},
		{"object id", Options{}, `{"device_id":{"id":"vr-0001"}}`, "", time.Time{}, ReasonMissingDeviceID},
		{"array id", Options{}, `{"device_id":["vr-0001"]}`, "", time.Time{}, ReasonMissingDeviceID},
		{"id only nested", Options{}, `{"device":{"device_id":"vr-0001"}}`, "", time.Time{}, ReasonMissingDeviceID},
		{"custom field absent", custom, `{"device_id":"vr-0001"}`, "", time.Time{}, ReasonMissingDeviceID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := tt.opts.ParseEvent([]byte(tt.data))
			if reason, _ := ReasonOf(err); reason != tt.reason || (err != nil) != (tt.reason != "") {
				t.Fatalf("ParseEvent(%.80q) error = %v, want reason %q", tt.data, err, tt.reason)
			}
			if err != nil {
				return
			}
			if ev.DeviceID != tt.id || !ev.EventTime.Equal(tt.time) || ev.EventTime.Location() != time.UTC {
				t.Errorf("ParseEvent(%q) = id %q, time %v, want %q, %v (UTC)", tt.data, ev.DeviceID, ev.EventTime, tt.id, tt.time)
			}
			if string(ev.Payload) != tt.data {
				t.Errorf("ParseEvent(%q).Payload = %q, want the data", tt.data, ev.Payload)
			}
		})
	}
}

// TestParseEventAllocs guards the hot path's allocation budget: the device
// id string is the only allocation.
func TestParseEventAllocs(t *testing.T) {
	data := []byte(`{"device_id":"vr-0001","event_time":"2026-11-24T07:59:58.123Z","event":"session_start","battery":87}`)
	var opts Options
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := opts.ParseEvent(data); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf("ParseEvent allocates %v times per call, want at most 1", allocs)
	}
}

// TestKeyIs covers keyIs's shortcut: a raw key no longer than the name
// is compared as it is, a longer one only if it has an escape.
func TestKeyIs(t *testing.T) {
	tests := []struct {
		key  string
		want bool
	}{
		{`"device_id"`, true},
		{`"device\u005fid"`, true},  // longer, escaped: decoded
		{`"device\u005fix"`, false}, // longer, escaped, another name
		{`"device_idx"`, false},     // longer, no escape
		{`"devic\tid"`, false},      // as long as the name, escaped
		{`"device"`, false},         // shorter
		{`"Device_id"`, false},      // case matters
	}
	for _, tt := range tests {
		if got := keyIs([]byte(tt.key), "device_id"); got != tt.want {
			t.Errorf("keyIs(%s, device_id) = %v, want %v", tt.key, got, tt.want)
		}
	}
}
