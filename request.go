package enrichevent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

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

// errNoMemory is returned by readBody for a large body whose bytes did not
// become free in the budget for large bodies in time.
var errNoMemory = errors.New("no memory free for a large body")

// readBody reads the whole body into buf (from its start, growing it if
// need be), refusing more than f.maxBody bytes. A large body first takes
// its bytes from f.bodies (take): its Content-Length before any byte is
// read, or, for a body of unknown length, the whole limit once more than
// largeBody bytes have arrived. The caller gives back what was taken
// (f.bodies.release) once the request is answered, whatever the error.
//
// When the client sent a Content-Length (Pub/Sub and Eventarc do), a body
// over the limit is refused unread, and any other costs at most one
// allocation of exactly its size, none with a large enough buffer from
// bodyBuffers. A body of unknown length is read into a buffer that doubles
// as bytes arrive.
func (f *function) readBody(w http.ResponseWriter, r *http.Request, buf []byte) (body []byte, taken int64, err error) {
	limit := f.maxBody
	switch n := r.ContentLength; {
	case n > limit:
		return nil, 0, bodyTooLarge(limit)
	case n > largeBody:
		if err := f.take(w, r, n); err != nil {
			return nil, 0, err
		}
		taken = n
		fallthrough
	case n >= 0:
		// net/http's body delivers exactly Content-Length bytes: no
		// MaxBytesReader needed. +1: room to read EOF without growing.
		body, err = readAll(r.Body, buf[:0], int(n)+1)
	default:
		src := http.MaxBytesReader(w, r.Body, limit)
		body, err = readAll(io.LimitReader(src, largeBody+1), buf[:0], 512)
		if err == nil && len(body) > largeBody {
			if err := f.take(w, r, limit); err != nil {
				return nil, 0, err
			}
			taken = limit
			body, err = readAll(src, body, 2*len(body))
		}
	}
	if isMaxBytesError(err) || int64(len(body)) > limit {
		return nil, taken, bodyTooLarge(limit)
	}
	return body, taken, err
}

// take takes n bytes of f.bodies for a large body before it is read,
// waiting at most f.bodies.wait: a request whose client has gone is not
// seen to end while its body is unread, so its wait must end on its own.
// The body then has f.bodies.readTimeout to arrive, so that a sender that
// stalls does not hold the budget.
func (f *function) take(w http.ResponseWriter, r *http.Request, n int64) error {
	ctx, cancel := context.WithTimeout(r.Context(), f.bodies.wait)
	defer cancel()
	if err := f.bodies.acquire(ctx, n); err != nil {
		return fmt.Errorf("%w: %d bytes not free in %v: %v", errNoMemory, n, f.bodies.wait, err)
	}
	// Not every ResponseWriter can (httptest's cannot); net/http's can, and
	// clears the deadline itself once the body is read (before its
	// background read, which would otherwise end the request's context).
	// After a failed read the deadline stays, so that net/http's
	// discarding of the rest of the body before it answers ends at once.
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(f.bodies.readTimeout))
	return nil
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

// readAll is io.ReadAll appending to b, whose capacity it uses, grown
// first to at least size bytes. When the body is longer, the buffer
// doubles: append's growth of a quarter at a time for large slices would
// allocate about five times a large body's size on the way.
func readAll(r io.Reader, b []byte, size int) ([]byte, error) {
	if cap(b) < size {
		b = append(make([]byte, 0, size), b...)
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
			perr := enrich.Permanent(enrich.ReasonInvalidEnvelope, "cloudevent: %v", err)
			if enc == binding.EncodingBinary {
				// The body may still be a push envelope: the error record
				// then keeps its message id, attributes and payload.
				env, _ := enrich.DecodePush(body)
				return env, perr
			}
			return enrich.PushEnvelope{}, perr
		}
		return decodeCloudEvent(ev, data)
	case binding.EncodingBatch:
		return enrich.PushEnvelope{}, enrich.Permanent(enrich.ReasonInvalidEnvelope, "batched CloudEvents are not supported")
	}
	return enrich.DecodePush(body)
}
