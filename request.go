package enrichevent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/devicestream/enrichevent/enrich"
)

// messagePublished is the only CloudEvent type this function accepts.
const messagePublished = "google.cloud.pubsub.topic.v1.messagePublished"

// errBodyTooLarge is returned by readBody for a body over MAX_REQUEST_BYTES.
var errBodyTooLarge = errors.New("request body too large")

// readBody reads the whole body, refusing more than limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, fmt.Errorf("%w: over MAX_REQUEST_BYTES=%d", errBodyTooLarge, limit)
	}
	return body, err
}

// decodeRequest turns a request into the push envelope it carries. It
// accepts binary and structured CloudEvents (Eventarc), whose data is the
// envelope, and a raw Pub/Sub push body. Any error is permanent; the
// envelope holds whatever could be decoded, for the error record.
func decodeRequest(r *http.Request, body []byte) (enrich.PushEnvelope, error) {
	r.Body = io.NopCloser(bytes.NewReader(body))
	switch cehttp.NewMessageFromHttpRequest(r).ReadEncoding() {
	case binding.EncodingBinary, binding.EncodingStructured:
		return decodeCloudEvent(r)
	case binding.EncodingBatch:
		return enrich.PushEnvelope{}, enrich.Permanent(enrich.ReasonInvalidEnvelope, "batched CloudEvents are not supported")
	}
	return enrich.DecodePush(body)
}

// decodeCloudEvent parses the CloudEvent in r with sdk-go's HTTP binding,
// in the request's own goroutine (see PLATFORM.md for why not
// functions.CloudEvent).
func decodeCloudEvent(r *http.Request) (enrich.PushEnvelope, error) {
	ev, err := cehttp.NewEventFromHTTPRequest(r)
	if err != nil {
		return enrich.PushEnvelope{}, enrich.Permanent(enrich.ReasonInvalidEnvelope, "cloudevent: %v", err)
	}
	fallback := enrich.PushEnvelope{Message: enrich.Message{MessageID: ev.ID(), PublishTime: ev.Time()}}
	if ev.Type() != messagePublished {
		return fallback, enrich.Permanent(enrich.ReasonWrongEventType, "cloudevent type %q, want %q", ev.Type(), messagePublished)
	}
	env, err := enrich.DecodePush(ev.Data())
	if env.Message.MessageID == "" {
		env.Message.MessageID = ev.ID()
	}
	if env.Message.PublishTime.IsZero() {
		env.Message.PublishTime = ev.Time()
	}
	return env, err
}
