package enrich

import (
	"encoding/base64"
	"encoding/json"
	"errors"
)

// pushWire is PushEnvelope as decoded, with Message a pointer so that a
// missing message can be told from an empty one.
type pushWire struct {
	Message         *Message `json:"message"`
	Subscription    string   `json:"subscription"`
	DeliveryAttempt int      `json:"deliveryAttempt"`
}

// DecodePush decodes a Pub/Sub push envelope: the body Pub/Sub posts to a
// push endpoint, and the data of the CloudEvent Eventarc delivers.
//
// Errors are *PermanentError with reason ReasonInvalidEnvelope (not JSON,
// not an object, a field of the wrong type, or no message) or
// ReasonBadBase64 (message.data is not base64). With bad base64 the other
// fields (message id, attributes, subscription) are still filled in, so
// that the error record can carry them.
//
// The result is always what decodePushJSON, the encoding/json decoder,
// returns. A well-formed envelope takes the fast path (decode_fast.go);
// anything that path does not handle exactly as encoding/json does,
// including every error, is decoded again by decodePushJSON.
func DecodePush(body []byte) (PushEnvelope, error) {
	if env, ok := decodePushFast(body); ok {
		return env, nil
	}
	return decodePushJSON(body)
}

// decodePushJSON is DecodePush with encoding/json: the reference that
// defines its results, reasons and error messages, and its fallback.
func decodePushJSON(body []byte) (PushEnvelope, error) {
	var w pushWire
	err := json.Unmarshal(body, &w)
	env := PushEnvelope{Subscription: w.Subscription, DeliveryAttempt: w.DeliveryAttempt}
	if w.Message != nil {
		env.Message = *w.Message
	}
	var corrupt base64.CorruptInputError
	switch {
	case errors.As(err, &corrupt):
		return env, Permanent(ReasonBadBase64, "push envelope: message.data: %v", err)
	case err != nil:
		return env, Permanent(ReasonInvalidEnvelope, "push envelope: %v", err)
	case w.Message == nil:
		return env, Permanent(ReasonInvalidEnvelope, "push envelope: no message")
	}
	return env, nil
}
