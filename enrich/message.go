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
