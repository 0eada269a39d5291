package enrichevent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/devicestream/enrichevent/cache"
	"github.com/devicestream/enrichevent/enrich"
	"github.com/devicestream/enrichevent/sink"
)

// function is one configured instance of EnrichEvent: the shared metadata
// cache and sink, reused by every invocation. It is safe for concurrent use.
type function struct {
	log     *slog.Logger
	project string // for trace ids
	maxBody int64
	bodies  *bodyBudget // bytes of large bodies in flight
	opts    enrich.Options
	meta    *cache.Cache[*enrich.Devices]
	sink    sink.Sink
	now     func() time.Time
	drains  bool // SIGTERM waits for the requests in flight: count them (drain.go)
}

// ServeHTTP handles one delivery. The answer tells Pub/Sub what to do:
// 204 acknowledges (the event is a row or an error record), 413 and 5xx make
// Pub/Sub redeliver. A request other than a POST is no delivery: 405.
func (f *function) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		// Pub/Sub and Eventarc deliver with POST. Anything else (an uptime
		// check, a browser) is no event: it must not become an error record.
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "EnrichEvent takes Pub/Sub deliveries, which are POST requests", http.StatusMethodNotAllowed)
		return
	}
	buf := bodyBuffers.Get().(*[]byte)
	body, taken, err := f.readBody(w, r, *buf)
	if taken > 0 {
		defer f.bodies.release(taken)
	}
	if err != nil {
		status := http.StatusBadRequest
		switch {
		case errors.Is(err, errBodyTooLarge):
			status = http.StatusRequestEntityTooLarge
		case errors.Is(err, errNoMemory):
			status = http.StatusServiceUnavailable
		}
		f.log.Error("request refused, Pub/Sub will redeliver it", "error", err, "status", status,
			"content_length", r.ContentLength, traceAttr(f.project, r))
		http.Error(w, err.Error(), status)
		return
	}
	env, err := decodeRequest(r, body)
	if err == nil {
		err = f.enrich(r.Context(), &env)
	}
	if _, permanent := enrich.ReasonOf(err); permanent {
		err = f.record(r.Context(), &env, body, err, r)
	} else if cap(body) <= maxPooledBody {
		// Nothing refers to the body any more: the envelope and the row
		// hold copies of what they need. An error record may hold the body
		// itself (its raw payload), and a sink may keep records after the
		// call returns, so a recorded message's body is never reused.
		*buf = body[:0]
		bodyBuffers.Put(buf)
	}
	if err != nil {
		f.log.Error("event not processed, Pub/Sub will redeliver it", "error", err,
			"message_id", env.Message.MessageID, "subscription", env.Subscription,
			"delivery_attempt", env.DeliveryAttempt, traceAttr(f.project, r))
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// enrich joins one message with its device and writes the row. A
// *enrich.PermanentError means the message can never become a row; any other
// error is transient.
func (f *function) enrich(ctx context.Context, env *enrich.PushEnvelope) error {
	ev, err := f.opts.ParseEvent(env.Message.Data)
	if err != nil {
		return err
	}
	snap, err := f.meta.Get(ctx)
	if err != nil {
		return err
	}
	var dev *enrich.Device
	if d, found := snap.Value.Lookup(ev.DeviceID); found {
		dev = &d
	} else {
		f.meta.Miss()
	}
	meta := enrich.MetaInfo{Version: snap.Version.Generation, LoadedAt: snap.LoadedAt}
	rows := rowSlices.Get().(*[1]enrich.Row)
	rows[0] = enrich.BuildRow(env, ev, dev, meta, f.now())
	err = f.sink.WriteRows(ctx, rows[:])
	*rows = [1]enrich.Row{} // drop the references to this request's data
	rowSlices.Put(rows)
	return err
}

// rowSlices holds the one-row arrays that enrich hands to the sink, so that
// a request does not allocate one (a slice passed to an interface method
// escapes to the heap). A sink does not keep the slice it is given (see
// sink.Sink), so the array is reused once WriteRows returns.
var rowSlices = sync.Pool{New: func() any { return new([1]enrich.Row) }}

// record writes the error record of a message that failed permanently and
// logs it. Only if the record is stored may the message be acknowledged.
func (f *function) record(ctx context.Context, env *enrich.PushEnvelope, body []byte, cause error, r *http.Request) error {
	raw := env.Message.Data
	if len(raw) == 0 { // no payload, or an empty one: the body says more
		raw = body
	}
	rec := enrich.NewErrorRecord(env, raw, cause, f.now())
	if err := f.sink.WriteErrors(ctx, []enrich.ErrorRecord{rec}); err != nil {
		// Say why it needed a record: it is dead-lettered if this lasts.
		return fmt.Errorf("store the error record of a poison message (%s): %w", rec.Reason, err)
	}
	f.log.Warn("poison message recorded in the error-records table", "reason", rec.Reason, "error", cause,
		"message_id", env.Message.MessageID, "subscription", env.Subscription, traceAttr(f.project, r))
	return nil
}
