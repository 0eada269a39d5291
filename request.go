package enrichevent

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/devicestream/enrichevent/enrich"
)

// maxPooledBody is the largest body buffer kept in bodyBuffers: a typical
// push is under 2 KB, and one large body must not pin its buffer.
const maxPooledBody = 16 << 10

// bodyBuffers holds body buffers for reuse by later requests (*[]byte, so
// that Put does not allocate). See (*function).ServeHTTP for when a buffer
// may go back.
var bodyBuffers = sync.Pool{New: func() any { return new([]byte) }}

// errBodyTooLarge is returned by readBody for a body over MAX_REQUEST_BYTES.
var errBodyTooLarge = errors.New("request body too large")

// readBody reads the whole body into buf (from its start, growing it if
// need be), refusing more than limit bytes. When the client sent a
// Content-Length (Pub/Sub and Eventarc do), a body over limit is refused
// unread, and any other costs at most one allocation of exactly its size,
// none with a large enough buffer from bodyBuffers; a large body has
// already taken that size from the function's bodyBudget. A body of
// unknown length is read into a buffer that doubles as bytes arrive.
func readBody(w http.ResponseWriter, r *http.Request, limit int64, buf []byte) ([]byte, error) {
	size := 512
	src := r.Body
	switch n := r.ContentLength; {
	case n > limit:
		return nil, bodyTooLarge(limit)
	case n >= 0:
		// net/http's body delivers exactly Content-Length bytes: no
		// MaxBytesReader needed.
		size = int(n) + 1 // +1: room to read EOF without growing
	default:
		src = http.MaxBytesReader(w, r.Body, limit)
	}
	body, err := readAll(src, buf[:0], size)
	if isMaxBytesError(err) || int64(len(body)) > limit {
		return nil, bodyTooLarge(limit)
	}
	return body, err
}

func bodyTooLarge(limit int64) error {
	return fmt.Errorf("%w: over MAX_REQUEST_BYTES=%d", errBodyTooLarge, limit)
}

// isMaxBytesError reports whether err comes from http.MaxBytesReader. The
// nil check comes first so that a successful read does not allocate the
// target of errors.As.
func isMaxBytesError(err error) bool {
	if err == nil {
		return false
	}
	var tooLarge *http.MaxBytesError
	return errors.As(err, &tooLarge)
}

// readAll is io.ReadAll into b, an empty slice whose capacity it uses,
// grown first to at least size bytes. When the body is longer, the buffer
// doubles: append's growth of a quarter at a time for large slices would
// allocate about five times a large body's size on the way.
func readAll(r io.Reader, b []byte, size int) ([]byte, error) {
	if cap(b) < size {
		b = make([]byte, 0, size)
	}
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(make([]byte, 0, 2*cap(b)), b...)
		}
	}
}

// decodeRequest turns a request into the push envelope it carries. It
// accepts binary and structured CloudEvents (Eventarc), whose data is the
// envelope, and a raw Pub/Sub push body. Any error is permanent; the
// envelope holds whatever could be decoded, for the error record.
func decodeRequest(r *http.Request, body []byte) (enrich.PushEnvelope, error) {
	env, err := decodeEnvelope(r, body)
	if err == nil {
		err = enrich.CheckPublishTime(env.Message.PublishTime)
	}
	return env, err
}

// decodeEnvelope is decodeRequest without the check of the publish time.
func decodeEnvelope(r *http.Request, body []byte) (enrich.PushEnvelope, error) {
	if !isCloudEvent(r.Header) {
		return enrich.DecodePush(body)
	}
	msg := cehttp.NewMessage(r.Header, nil)
	switch enc := msg.ReadEncoding(); enc {
	case binding.EncodingBinary, binding.EncodingStructured:
		ev, data, err := readCloudEvent(msg, enc, body)
		if err != nil {
			return enrich.PushEnvelope{}, enrich.Permanent(enrich.ReasonInvalidEnvelope, "cloudevent: %v", err)
		}
		return decodeCloudEvent(ev, data)
	case binding.EncodingBatch:
		return enrich.PushEnvelope{}, enrich.Permanent(enrich.ReasonInvalidEnvelope, "batched CloudEvents are not supported")
	}
	return enrich.DecodePush(body)
}
