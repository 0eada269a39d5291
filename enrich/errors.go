package enrich

import (
	"errors"
	"fmt"
)

// Reason is a stable code for why a message could not become a row. It is
// written to the error-records table's reason column.
type Reason string

// Reasons for permanent failures.
const (
	ReasonInvalidEnvelope  Reason = "invalid_envelope"  // the request body is not a push envelope or CloudEvent
	ReasonWrongEventType   Reason = "wrong_event_type"  // a CloudEvent of a type other than messagePublished
	ReasonBadBase64        Reason = "bad_base64"        // message.data is not base64
	ReasonPayloadTooLarge  Reason = "payload_too_large" // decoded data over MAX_PAYLOAD_BYTES
	ReasonInvalidJSON      Reason = "invalid_json"      // data is not JSON
	ReasonNotObject        Reason = "not_an_object"     // data is JSON but not an object
	ReasonMissingDeviceID  Reason = "missing_device_id" // no device id field, or it is empty or not a string/number
	ReasonBigQueryRowError Reason = "bigquery_row_error"
)

// PermanentError is a failure that no retry can fix: the message is
// recorded in the error-records table and acknowledged.
type PermanentError struct {
	Reason Reason
	Err    error
}

func (e *PermanentError) Error() string { return fmt.Sprintf("%s: %v", e.Reason, e.Err) }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent returns a *PermanentError with reason r and a message formatted
// like fmt.Errorf.
func Permanent(r Reason, format string, args ...any) error {
	return &PermanentError{Reason: r, Err: fmt.Errorf(format, args...)}
}

// ReasonOf reports the reason of a permanent error in err's chain, and
// whether there is one.
func ReasonOf(err error) (Reason, bool) {
	if err == nil {
		return "", false // before pe, which escapes: no allocation per success
	}
	var pe *PermanentError
	if errors.As(err, &pe) {
		return pe.Reason, true
	}
	return "", false
}
