package enrich

import (
	"encoding/base64"
	"encoding/json"
	"maps"
	"testing"
	"time"
)

// envelope returns a push envelope carrying data, as Pub/Sub posts it.
func envelope(data string) []byte {
	return []byte(`{"message":{"data":"` + base64.StdEncoding.EncodeToString([]byte(data)) +
		`","attributes":{"origin":"headset"},"messageId":"1001","publishTime":"2026-11-24T08:00:00.123Z"},` +
		`"subscription":"projects/demo/subscriptions/device-events-push","deliveryAttempt":2}`)
}

func TestDecodePush(t *testing.T) {
	publish := time.Date(2026, 11, 24, 8, 0, 0, 123e6, time.UTC)
	full := PushEnvelope{
		Message: Message{
			Data:        []byte(`{"device_id":"vr-0001"}`),
			Attributes:  map[string]string{"origin": "headset"},
			MessageID:   "1001",
			PublishTime: publish,
		},
		Subscription:    "projects/demo/subscriptions/device-events-push",
		DeliveryAttempt: 2,
	}
	noData := full
	noData.Message.Data = nil
	tests := []struct {
		name   string
		body   string
		want   PushEnvelope
		reason Reason // "" means no error
	}{
		{"push envelope", string(envelope(`{"device_id":"vr-0001"}`)), full, ""},
		{"minimal", `{"message":{"messageId":"7"}}`, PushEnvelope{Message: Message{MessageID: "7"}}, ""},
		{"empty message", `{"message":{}}`, PushEnvelope{}, ""},
		{"ordering key and unknown fields", `{"message":{"messageId":"8","orderingKey":"k","message_id":"8"},"extra":1}`,
			PushEnvelope{Message: Message{MessageID: "8", OrderingKey: "k"}}, ""},
		{"bad base64", `{"message":{"data":"not base64!","attributes":{"origin":"headset"},"messageId":"1001",` +
			`"publishTime":"2026-11-24T08:00:00.123Z"},"subscription":"projects/demo/subscriptions/device-events-push",` +
			`"deliveryAttempt":2}`, noData, ReasonBadBase64},
		{"not JSON", `message=hello`, PushEnvelope{}, ReasonInvalidEnvelope},
		{"empty body", ``, PushEnvelope{}, ReasonInvalidEnvelope},
		{"truncated", `{"message":{"messageId":"1"`, PushEnvelope{}, ReasonInvalidEnvelope},
		{"array", `[{"message":{}}]`, PushEnvelope{}, ReasonInvalidEnvelope},
		{"string", `"message"`, PushEnvelope{}, ReasonInvalidEnvelope},
		{"null", `null`, PushEnvelope{}, ReasonInvalidEnvelope},
		{"no message", `{"subscription":"s"}`, PushEnvelope{Subscription: "s"}, ReasonInvalidEnvelope},
		{"null message", `{"message":null}`, PushEnvelope{}, ReasonInvalidEnvelope},
		{"message not an object", `{"message":"hello"}`, PushEnvelope{}, ReasonInvalidEnvelope},
		{"data not a string", `{"message":{"data":42}}`, PushEnvelope{}, ReasonInvalidEnvelope},
		{"bad publish time", `{"message":{"publishTime":"yesterday"}}`, PushEnvelope{}, ReasonInvalidEnvelope},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodePush([]byte(tt.body))
			if reason, _ := ReasonOf(err); reason != tt.reason || (err != nil) != (tt.reason != "") {
				t.Fatalf("DecodePush(%q) error = %v, want reason %q", tt.body, err, tt.reason)
			}
			if !sameEnvelope(got, tt.want) {
				t.Errorf("DecodePush(%q) = %+v, want %+v", tt.body, got, tt.want)
			}
		})
	}
}

// sameEnvelope reports whether a and b are equal, nil and empty data and
// attributes being equal.
func sameEnvelope(a, b PushEnvelope) bool {
	am, bm := a.Message, b.Message
	return string(am.Data) == string(bm.Data) && maps.Equal(am.Attributes, bm.Attributes) &&
		am.MessageID == bm.MessageID && am.PublishTime.Equal(bm.PublishTime) &&
		am.OrderingKey == bm.OrderingKey && a.Subscription == b.Subscription &&
		a.DeliveryAttempt == b.DeliveryAttempt
}

// TestDecodePushMatchesUnmarshal checks that DecodePush decodes a valid
// envelope exactly as encoding/json does.
func TestDecodePushMatchesUnmarshal(t *testing.T) {
	body := envelope(`{"device_id":"vr-0001","event_time":"2026-11-24T07:59:58Z"}`)
	var want PushEnvelope
	if err := json.Unmarshal(body, &want); err != nil {
		t.Fatal(err)
	}
	got, err := DecodePush(body)
	if err != nil || !sameEnvelope(got, want) {
		t.Errorf("DecodePush(%s) = %+v, %v, want %+v", body, got, err, want)
	}
}
