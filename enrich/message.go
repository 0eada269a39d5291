package enrich

import (
	"encoding/json"
	"time"
)

// Message is a Pub/Sub message as Pub/Sub delivers it to a push endpoint.
// Data is declared as []byte so that encoding/json does the base64.
type Message struct {
	Data        []byte            `json:"data,omitempty"`
	Attributes  map[string]string `json:"attributes,omitempty"`
	MessageID   string            `json:"messageId"`
	PublishTime time.Time         `json:"publishTime"`
	OrderingKey string            `json:"orderingKey,omitempty"`

	// attributesJSON is Attributes as the row's Attributes column holds
	// them (see attributesJSON), set by DecodePush when the body held
	// them in exactly that form, so that BuildRow need not encode them
	// again; nil otherwise. Whoever changes Attributes must clear it.
	attributesJSON json.RawMessage
}

// PushEnvelope is the body of a Pub/Sub push request, and the data of the
// CloudEvent that Eventarc delivers for a Pub/Sub trigger.
type PushEnvelope struct {
	Message         Message `json:"message"`
	Subscription    string  `json:"subscription,omitempty"`
	DeliveryAttempt int     `json:"deliveryAttempt,omitempty"`
}

// CheckPublishTime reports a publish time outside BigQuery's TIMESTAMP
// range (years 1 to 9999 in UTC) as a permanent invalid_envelope error.
// Pub/Sub never sends one, but a forged or corrupt envelope may
// ("9999-12-31T23:30:00-01:00" is in year 10000 in UTC), and no sink could
// store its row: retrying it would never end.
func CheckPublishTime(t time.Time) error {
	if t.Before(minTimestamp) || t.After(maxTimestamp) {
		return Permanent(ReasonInvalidEnvelope, "publishTime %s is outside years 1 to 9999 in UTC, the range of a BigQuery TIMESTAMP",
			t.Format(time.RFC3339Nano))
	}
	return nil
}

// The range of a BigQuery TIMESTAMP.
var (
	minTimestamp = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTimestamp = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
)
