package enrichevent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/binding/format"
	"github.com/cloudevents/sdk-go/v2/binding/spec"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/cloudevents/sdk-go/v2/types"

	"github.com/devicestream/enrichevent/enrich"
)

// messagePublished is the only CloudEvent type this function accepts.
const messagePublished = "google.cloud.pubsub.topic.v1.messagePublished"

// isCloudEvent reports whether a request with header h may carry a
// CloudEvent, by the two signs sdk-go's HTTP binding looks for
// (cehttp.NewMessage): a CloudEvents media type, or a ce-specversion header.
// Raw Pub/Sub pushes have neither, and skip the binding.
func isCloudEvent(h http.Header) bool {
	return len(h["Ce-Specversion"]) > 0 || format.Lookup(h.Get("Content-Type")) != nil
}

// readCloudEvent reads the CloudEvent in msg, of encoding enc, with
// sdk-go's HTTP binding, in the request's own goroutine (see PLATFORM.md
// for why not functions.CloudEvent), and returns it with its data. A
// binary event's attributes are in the headers and its data is body, so
// the SDK reads only the headers; a structured event is all in body.
// The SDK is library code reading what a caller sent: a panic in it is
// this request's error, so that the request becomes an error record
// rather than a crash on every delivery.
func readCloudEvent(msg *cehttp.Message, enc binding.Encoding, body []byte) (ev *event.Event, data []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			ev, data, err = nil, nil, fmt.Errorf("the CloudEvents SDK failed on this request: %v", p)
		}
	}()
	if enc == binding.EncodingBinary {
		if _, ok := msg.Header["Ce-"]; ok {
			// sdk-go (v2.16.2) reads past the end of this name.
			return nil, nil, errors.New(`a "ce-" header names no attribute`)
		}
		ev, err = readBinaryEvent(msg)
		return ev, body, err
	}
	msg.BodyReader = io.NopCloser(bytes.NewReader(body))
	ev, err = binding.ToEvent(context.Background(), msg)
	if err != nil {
		return nil, nil, err
	}
	return ev, ev.Data(), nil
}

// decodeCloudEvent decodes data, the push envelope that is the data of
// CloudEvent ev.
func decodeCloudEvent(ev *event.Event, data []byte) (enrich.PushEnvelope, error) {
	fallback := enrich.PushEnvelope{Message: enrich.Message{MessageID: ev.ID(), PublishTime: ev.Time()}}
	if ev.Type() != messagePublished {
		return fallback, enrich.Permanent(enrich.ReasonWrongEventType, "cloudevent type %q, want %q", ev.Type(), messagePublished)
	}
	env, err := enrich.DecodePush(data)
	if env.Message.MessageID == "" {
		env.Message.MessageID = ev.ID()
	}
	if env.Message.PublishTime.IsZero() {
		env.Message.PublishTime = ev.Time()
	}
	return env, err
}

// readBinaryEvent reads the binary CloudEvent msg as binding.ToEvent does,
// through sdk-go's own binding.DirectWrite, into an eventBuilder.
func readBinaryEvent(msg binding.MessageReader) (*event.Event, error) {
	b := new(eventBuilder)
	*b = eventBuilder(event.New())
	if _, err := binding.DirectWrite(context.Background(), msg, nil, b); err != nil {
		return nil, err
	}
	return (*event.Event)(b), nil
}

// eventBuilder is the binding.BinaryWriter that binding.ToEvent builds an
// event with (sdk-go's messageToEventBuilder, which is unexported), with
// one difference: a version 1.0 event's source that is the same string as
// the last one parsed takes that parse (lastSource) instead of a new
// url.Parse, the largest cost of reading a binary CloudEvent. Eventarc
// sends every event of a topic with the same source. Every value is
// checked and converted as ToEvent does it; FuzzEventBuilder holds the two
// to the same events, and to failing on the same headers.
type eventBuilder event.Event

var _ binding.BinaryWriter = (*eventBuilder)(nil)

// parsedSource is a source attribute and its parse.
type parsedSource struct {
	raw string
	ref types.URIRef
}

// lastSource is the last source attribute that parsed, shared by every
// request.
var lastSource atomic.Pointer[parsedSource]

func (b *eventBuilder) Start(context.Context) error { return nil }

func (b *eventBuilder) End(context.Context) error { return nil }

func (b *eventBuilder) SetData(data io.Reader) error {
	buf, ok := data.(*bytes.Buffer)
	if !ok {
		buf = new(bytes.Buffer)
		if _, err := io.Copy(buf, data); err != nil {
			return err
		}
	}
	if buf.Len() > 0 {
		b.DataEncoded = buf.Bytes()
	}
	return nil
}

func (b *eventBuilder) SetAttribute(attribute spec.Attribute, value any) error {
	if value == nil {
		_ = attribute.Delete(b.Context)
		return nil
	}
	switch attribute.Kind() {
	case spec.SpecVersion:
		str, err := types.ToString(value)
		if err != nil {
			return err
		}
		switch str {
		case event.CloudEventsVersionV03:
			b.Context = b.Context.AsV03()
		case event.CloudEventsVersionV1:
			b.Context = b.Context.AsV1()
		default:
			return fmt.Errorf("unrecognized event version %s", str)
		}
		return nil
	case spec.Source:
		ec, v1 := b.Context.(*event.EventContextV1)
		raw, isString := value.(string)
		if !v1 || !isString {
			break
		}
		if last := lastSource.Load(); last != nil && last.raw == raw {
			ec.Source = last.ref
			return nil
		}
		if err := attribute.Set(ec, raw); err != nil {
			return err
		}
		lastSource.Store(&parsedSource{raw: raw, ref: ec.Source})
		return nil
	}
	return attribute.Set(b.Context, value)
}

func (b *eventBuilder) SetExtension(name string, value any) error {
	if value == nil {
		return b.Context.SetExtension(name, nil)
	}
	value, err := types.Validate(value)
	if err != nil {
		return err
	}
	return b.Context.SetExtension(name, value)
}
