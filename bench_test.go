package enrichevent

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/devicestream/enrichevent/enrich"
)

// benchEvent is a typical event for sample device vr-0017: 300 bytes of
// JSON, the same as enrich's BenchmarkHotPath.
const benchEvent = `{"device_id":"vr-0017","event_time":"2026-11-24T07:59:58.123Z","event":"session_start",` +
	`"session_id":"6f1c2a9e-3b7d-4e21-9a54-0c8e7f3d2b19","app":{"name":"physio-balance","version":"4.12.3"},` +
	`"battery":87,"temperature_c":36.4,"firmware":"2.8.1-rc3","controllers":["left","right"],` +
	`"ipd_mm":63.5,"user":"patient-40913","clinic_mode":true}`

// benchEnvelope is the push envelope Pub/Sub posts for benchEvent, which
// is also the data of the CloudEvent Eventarc delivers for it.
var benchEnvelope = []byte(`{"message":{"data":"` + base64.StdEncoding.EncodeToString([]byte(benchEvent)) +
	`","attributes":{"origin":"headset","schema":"v3"},"messageId":"13815214470394937",` +
	`"publishTime":"2026-11-24T08:00:00.123Z"},` +
	`"subscription":"projects/demo/subscriptions/device-events-push","deliveryAttempt":1}`)

// benchRequest returns a request carrying benchEnvelope as a raw push
// body, or as the data of a binary CloudEvent.
func benchRequest(b *testing.B, cloudEvent bool) *http.Request {
	req, err := http.NewRequest("POST", "http://127.0.0.1/projects/demo/topics/device-events", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.ContentLength = int64(len(benchEnvelope)) // as Pub/Sub and Eventarc send it
	req.Header.Set("Content-Type", "application/json")
	if cloudEvent {
		req.Header.Set("Ce-Id", "13815214470394937")
		req.Header.Set("Ce-Specversion", "1.0")
		req.Header.Set("Ce-Type", messagePublished)
		req.Header.Set("Ce-Source", "//pubsub.googleapis.com/projects/demo/topics/device-events")
		req.Header.Set("Ce-Time", "2026-11-24T08:00:00.123Z")
	}
	return req
}

// reusableBody is a request body that Reset rewinds, so that one request
// serves every iteration.
type reusableBody struct{ bytes.Reader }

func (*reusableBody) Close() error { return nil }

// discardResponse is a ResponseWriter that keeps only the status code.
type discardResponse struct {
	header http.Header
	code   int
}

func (w *discardResponse) Header() http.Header         { return w.header }
func (w *discardResponse) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardResponse) WriteHeader(code int)        { w.code = code }

// serveLoop serves benchEnvelope to handler in b.Loop, with one request
// and one response writer reused by every iteration.
func serveLoop(b *testing.B, handler http.HandlerFunc, cloudEvent bool) {
	req := benchRequest(b, cloudEvent)
	var body reusableBody
	w := &discardResponse{header: make(http.Header)}
	b.ReportAllocs()
	b.SetBytes(int64(len(benchEnvelope)))
	n := 0
	cpu := processCPU()
	for b.Loop() {
		body.Reset(benchEnvelope)
		req.Body = &body
		clear(w.header)
		w.code = http.StatusOK
		handler(w, req)
		if w.code != http.StatusNoContent {
			b.Fatalf("ServeHTTP answered %d, want 204", w.code)
		}
		n++
	}
	reportCPU(b, cpu, n)
	reportRatio(b, n)
}

// reportRatio reports the cost of the n iterations just timed as a
// multiple of the baseline (x-unmarshal): encoding/json decoding the push
// envelope alone, as enrich's BenchmarkUnmarshalEnvelope does, timed right
// after for as many iterations, or for one second.
func reportRatio(b *testing.B, n int) {
	start := time.Now()
	i := 0
	for ; i < n && (i%64 != 0 || time.Since(start) < time.Second); i++ {
		unmarshalEnvelope(b)
	}
	base := float64(time.Since(start)) / float64(i)
	b.ReportMetric(float64(b.Elapsed())/float64(n)/base, "x-unmarshal")
}

// reportCPU reports the process CPU time per iteration since start
// (cpu-ns/op), GC included: on a shared machine CPU time is steadier than
// wall time, which other processes stretch.
func reportCPU(b *testing.B, start time.Duration, n int) {
	if cpu := processCPU() - start; cpu > 0 && n > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/op")
	}
}

// processCPU returns the process's user and system CPU time from
// /proc/self/stat (Linux; 10ms resolution, enough for a benchmark of a
// second or more), or 0 where there is none.
func processCPU() time.Duration {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	// After "(comm)": utime and stime are the 12th and 13th fields.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

func unmarshalEnvelope(b *testing.B) {
	var env enrich.PushEnvelope
	if err := json.Unmarshal(benchEnvelope, &env); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkServeHTTP is the whole handler for one event: read the body,
// decode the request, join, build the row, write it to the stdout sink (to
// io.Discard), answer 204. The baselines, in the same run:
//   - unmarshal-envelope: json.Unmarshal of the push envelope alone;
//   - bare: a handler that only reads the body and answers 204, the floor.
//
// Every sub-benchmark reports x-unmarshal, its time over the first
// baseline's for as many iterations, timed right after it.
func BenchmarkServeHTTP(b *testing.B) {
	b.Run("unmarshal-envelope", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(benchEnvelope)))
		n := 0
		cpu := processCPU()
		for b.Loop() {
			unmarshalEnvelope(b)
			n++
		}
		reportCPU(b, cpu, n)
		reportRatio(b, n)
	})
	b.Run("bare", func(b *testing.B) {
		serveLoop(b, bareHandler, false)
	})
	for _, shape := range []struct {
		name       string
		cloudEvent bool
	}{{"push", false}, {"cloudevent", true}} {
		b.Run(shape.name, func(b *testing.B) {
			h := newHarness(b, nil, io.Discard)
			serveLoop(b, h.f.ServeHTTP, shape.cloudEvent)
		})
	}
}

// bareHandler only reads the body and answers 204: the least any handler
// does.
func bareHandler(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.WriteHeader(http.StatusNoContent)
}

// BenchmarkReadBody reads benchEnvelope's body as the handler does, sized
// from Content-Length, against io.ReadAll (the baseline, which grows its
// buffer from 512 bytes).
func BenchmarkReadBody(b *testing.B) {
	w := &discardResponse{header: make(http.Header)}
	f := &function{maxBody: 12 << 20, bodies: newBodyBudget(48 << 20)}
	for _, bench := range []struct {
		name string
		read func(*http.Request) ([]byte, error)
	}{
		{"io.ReadAll", func(r *http.Request) ([]byte, error) { return io.ReadAll(http.MaxBytesReader(w, r.Body, 12<<20)) }},
		{"readBody", func(r *http.Request) ([]byte, error) {
			body, _, err := f.readBody(w, r, nil)
			return body, err
		}},
		{"readBody/reused", func(r *http.Request) ([]byte, error) {
			buf := bodyBuffers.Get().(*[]byte)
			body, _, err := f.readBody(w, r, *buf)
			*buf = body[:0]
			bodyBuffers.Put(buf)
			return body, err
		}},
	} {
		b.Run(bench.name, func(b *testing.B) {
			req := benchRequest(b, false)
			var body reusableBody
			b.ReportAllocs()
			b.SetBytes(int64(len(benchEnvelope)))
			for b.Loop() {
				body.Reset(benchEnvelope)
				req.Body = &body
				if got, err := bench.read(req); err != nil || len(got) != len(benchEnvelope) {
					b.Fatalf("read %d bytes, %v; want %d", len(got), err, len(benchEnvelope))
				}
			}
		})
	}
}

// BenchmarkDecodeCloudEvent decodes a binary CloudEvent as the handler
// does, with the SDK reading only the headers, against the SDK reading
// the whole request (the baseline: cehttp.NewEventFromHTTPRequest, which
// copies the body into the event) and the data decoded from there.
func BenchmarkDecodeCloudEvent(b *testing.B) {
	for _, bench := range []struct {
		name   string
		decode func(*http.Request) (enrich.PushEnvelope, error)
	}{
		{"NewEventFromHTTPRequest", func(r *http.Request) (enrich.PushEnvelope, error) {
			ev, err := cehttp.NewEventFromHTTPRequest(r)
			if err != nil {
				return enrich.PushEnvelope{}, err
			}
			return enrich.DecodePush(ev.Data())
		}},
		{"decodeRequest", func(r *http.Request) (enrich.PushEnvelope, error) { return decodeRequest(r, benchEnvelope) }},
	} {
		b.Run(bench.name, func(b *testing.B) {
			req := benchRequest(b, true)
			var body reusableBody
			b.ReportAllocs()
			for b.Loop() {
				body.Reset(benchEnvelope)
				req.Body = &body
				env, err := bench.decode(req)
				if err != nil || env.Message.MessageID != "13815214470394937" {
					b.Fatalf("decode = %q, %v", env.Message.MessageID, err)
				}
			}
		})
	}
}

// BenchmarkCacheHit is the handler's metadata lookup: the shared cache's
// Get (fresh snapshot) and the device lookup, against its baseline, the
// clock read Get cannot avoid (it compares the snapshot's age with the
// TTL). Target: no allocation, no lock.
func BenchmarkCacheHit(b *testing.B) {
	b.Run("time.Now", func(b *testing.B) {
		b.ReportAllocs()
		var t time.Time
		for b.Loop() {
			t = time.Now()
		}
		_ = t
	})
	b.Run("Get+Lookup", func(b *testing.B) {
		h := newHarness(b, nil, io.Discard)
		ctx := context.Background()
		if _, err := h.f.meta.Get(ctx); err != nil { // the first load
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			snap, err := h.f.meta.Get(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if _, found := snap.Value.Lookup("vr-0017"); !found {
				b.Fatal("vr-0017 not found")
			}
		}
	})
}
