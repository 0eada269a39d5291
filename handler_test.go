package enrichevent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/devicestream/enrichevent/enrich"
)

// harness is a function wired from a configuration like a deployed one,
// with the stdout sink writing to a buffer.
type harness struct {
	f         *function
	out, logs bytes.Buffer
}

// newHarness wires a function from vars; stdout nil means h.out.
func newHarness(t testing.TB, vars map[string]string, stdout io.Writer) *harness {
	t.Helper()
	m := map[string]string{"METADATA_URI": "testdata/devices.csv"}
	for k, v := range vars {
		m[k] = v
	}
	cfg, err := loadConfig(env(m))
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	h := &harness{}
	if stdout == nil {
		stdout = &h.out
	}
	h.f, err = newFunction(context.Background(), cfg, stdout, &h.logs)
	if err != nil {
		t.Fatalf("newFunction: %v", err)
	}
	// No summary of thinned lines from a real timer: it would write to
	// h.logs from another goroutine, after the test read it. A test of
	// the summaries sets its own clock and timers (fakeLogClock).
	h.f.log.Handler().(*thinHandler).lines.after = func(time.Duration, func()) {}
	return h
}

// serve posts req to the function and returns the recorded response.
func (h *harness) serve(req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.f.ServeHTTP(rec, req)
	return rec
}

// logLine returns the fields of the first log line whose message is msg;
// there must be one.
func (h *harness) logLine(t testing.TB, msg string) map[string]any {
	t.Helper()
	lines := h.logLines(t, msg)
	if len(lines) == 0 {
		t.Fatalf("no log line %q in %q", msg, h.logs.String())
	}
	return lines[0]
}

// logLines returns the fields of every log line whose message is msg.
func (h *harness) logLines(t testing.TB, msg string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(h.logs.Bytes()))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if line["message"] == msg {
			lines = append(lines, line)
		}
	}
	return lines
}

// output returns the rows and error records the stdout sink printed.
func (h *harness) output(t testing.TB) (rows []enrich.Row, recs []enrich.ErrorRecord) {
	t.Helper()
	return parseStdout(t, h.out.Bytes())
}

func parseStdout(t testing.TB, b []byte) (rows []enrich.Row, recs []enrich.ErrorRecord) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var line struct {
			Row         *enrich.Row         `json:"row"`
			ErrorRecord *enrich.ErrorRecord `json:"error_record"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("stdout line %q: %v", sc.Text(), err)
		}
		switch {
		case line.Row != nil:
			rows = append(rows, *line.Row)
		case line.ErrorRecord != nil:
			recs = append(recs, *line.ErrorRecord)
		default:
			t.Fatalf("stdout line %q is neither a row nor an error record", sc.Text())
		}
	}
	return rows, recs
}

// sampleRequest reads testdata/requests/name, a raw HTTP request.
func sampleRequest(t testing.TB, name string) *http.Request {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "requests", name))
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b)))
	if err != nil {
		t.Fatalf("sample %s: %v", name, err)
	}
	return req
}

// sampleDevices parses the sample metadata the harness uses.
func sampleDevices(t testing.TB) *enrich.Devices {
	t.Helper()
	f, err := os.Open("testdata/devices.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := enrich.ParseMetadata(f, enrich.FormatHint{Name: "devices.csv"})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestSampleRequests posts every sample request: each good one becomes an
// enriched row, each malformed one an error record, and all are answered
// 204 so that Pub/Sub does not redeliver.
func TestSampleRequests(t *testing.T) {
	devices := sampleDevices(t)
	tests := []struct {
		file      string
		messageID string
		deviceID  string // row expected; "" means an error record
		found     bool
		reason    enrich.Reason
	}{
		{file: "push.http", messageID: "1001", deviceID: "vr-0001", found: true},
		{file: "eventarc_binary.http", messageID: "1002", deviceID: "vr-0002", found: true},
		{file: "structured.http", messageID: "1003", deviceID: "vr-0003", found: true},
		{file: "unknown_device.http", messageID: "1004", deviceID: "vr-9999"},
		{file: "numeric_device_id.http", messageID: "1005", deviceID: "42"},
		{file: "bad_not_json.http", messageID: "2001", reason: enrich.ReasonInvalidJSON},
		{file: "bad_json_array.http", messageID: "2002", reason: enrich.ReasonNotObject},
		{file: "bad_missing_device_id.http", messageID: "2003", reason: enrich.ReasonMissingDeviceID},
		{file: "bad_empty_device_id.http", messageID: "2004", reason: enrich.ReasonMissingDeviceID},
		{file: "bad_base64.http", messageID: "2005", reason: enrich.ReasonBadBase64},
		{file: "bad_binary.http", messageID: "2006", reason: enrich.ReasonInvalidJSON},
		{file: "bad_event_type.http", messageID: "2007", reason: enrich.ReasonWrongEventType},
		{file: "bad_envelope.http", reason: enrich.ReasonInvalidEnvelope},
		{file: "bad_publish_time.http", messageID: "2008", reason: enrich.ReasonInvalidEnvelope},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			h := newHarness(t, nil, nil)
			resp := h.serve(sampleRequest(t, tt.file))
			if resp.Code != http.StatusNoContent {
				t.Fatalf("POST %s = %d %q, want 204", tt.file, resp.Code, resp.Body)
			}
			rows, recs := h.output(t)
			if tt.deviceID == "" {
				if len(rows) != 0 || len(recs) != 1 {
					t.Fatalf("POST %s wrote %d rows, %d error records; want 0, 1", tt.file, len(rows), len(recs))
				}
				r := recs[0]
				if r.Reason != tt.reason || r.MessageID != tt.messageID || len(r.Payload) == 0 || r.ErrorMessage == "" {
					t.Errorf("error record = %+v, want reason %s, message id %q, a payload and a message", r, tt.reason, tt.messageID)
				}
				line := h.logLine(t, "poison message recorded in the error-records table")
				if line["severity"] != "WARNING" || line["reason"] != string(tt.reason) || line["message_id"] != tt.messageID {
					t.Errorf("log line %v, want a WARNING with reason %s and message id %q", line, tt.reason, tt.messageID)
				}
				if tt.file == "bad_not_json.http" && r.Attributes["origin"] != "headset" {
					t.Errorf("error record attributes = %v, want the message's origin=headset", r.Attributes)
				}
				return
			}
			if len(rows) != 1 || len(recs) != 0 {
				t.Fatalf("POST %s wrote %d rows, %d error records; want 1, 0", tt.file, len(rows), len(recs))
			}
			row := rows[0]
			if row.MessageID != tt.messageID || row.DeviceID != tt.deviceID || row.DeviceFound != tt.found {
				t.Errorf("row = %+v, want message %s device %s found %v", row, tt.messageID, tt.deviceID, tt.found)
			}
			if dev, ok := devices.Lookup(tt.deviceID); ok {
				if row.AssetTag != dev.AssetTag || row.LocationID != dev.LocationID || row.TenantName != dev.TenantName {
					t.Errorf("row location = %q %q %q, want %q %q %q", row.AssetTag, row.LocationID, row.TenantName, dev.AssetTag, dev.LocationID, dev.TenantName)
				}
			}
			if row.PublishTime.IsZero() || row.EventTime.IsZero() || row.IngestTime.IsZero() || row.MetadataLoadedAt.IsZero() || row.MetadataVersion == 0 {
				t.Errorf("row has a zero time or version: %+v", row)
			}
			if !json.Valid(row.Payload) {
				t.Errorf("row payload %q is not JSON", row.Payload)
			}
		})
	}
}

// TestCloudEventHeaderErrorKeepsTheMessage: a binary CloudEvent whose
// headers the SDK refuses is an error record, which still carries what
// its body, a push envelope, says: the message id, attributes and payload.
// A header named only "ce-", on which sdk-go panics, is one of them.
func TestCloudEventHeaderErrorKeepsTheMessage(t *testing.T) {
	for _, tc := range []struct{ header, value, want string }{
		{"Ce-Time", "2026-11-24 08:00:00Z", "time"}, // not RFC 3339
		{"Ce-", "x", `a "ce-" header names no attribute`},
	} {
		t.Run(tc.header, func(t *testing.T) {
			h := newHarness(t, nil, nil)
			req := sampleRequest(t, "eventarc_binary.http")
			req.Header[tc.header] = []string{tc.value}
			if resp := h.serve(req); resp.Code != http.StatusNoContent {
				t.Fatalf("POST = %d %q, want 204", resp.Code, resp.Body)
			}
			rows, recs := h.output(t)
			if len(rows) != 0 || len(recs) != 1 {
				t.Fatalf("wrote %d rows, %d error records; want 0, 1", len(rows), len(recs))
			}
			r := recs[0]
			if r.Reason != enrich.ReasonInvalidEnvelope || r.MessageID != "1002" || r.Attributes["origin"] != "headset" ||
				!strings.Contains(string(r.Payload), `"device_id":"vr-0002"`) || !strings.Contains(r.ErrorMessage, tc.want) {
				t.Errorf("error record = %+v, want invalid_envelope saying %q, with message id 1002, origin=headset and the event as payload", r, tc.want)
			}
		})
	}
}

// TestCloudEventSDKPanicIsAnError: a panic in sdk-go while it reads a
// request is that request's error, not a crash (here a header with no
// value, which net/http never makes, so that the SDK's v[0] panics).
func TestCloudEventSDKPanicIsAnError(t *testing.T) {
	req := sampleRequest(t, "eventarc_binary.http")
	req.Header["Ce-Foo"] = []string{}
	msg := cehttp.NewMessage(req.Header, nil)
	ev, _, err := readCloudEvent(msg, msg.ReadEncoding(), []byte("{}"))
	if ev != nil || err == nil || !strings.Contains(err.Error(), "the CloudEvents SDK failed on this request: runtime error") {
		t.Errorf("readCloudEvent = %v, %v; want the SDK's panic as an error", ev, err)
	}
}

// TestUnknownDeviceStartsEarlyCheck: an event of a device the metadata
// does not know makes the handler ask the cache for an early version check
// (at most one per METADATA_MISS_REFRESH_INTERVAL), so that a device added
// to the file is enriched well before the TTL.
func TestUnknownDeviceStartsEarlyCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "devices.csv")
	write := func(csv string, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(path, []byte(csv), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil { // the file's version
			t.Fatal(err)
		}
	}
	start := time.Now()
	write("device_id,asset_tag\nvr-0001,A1\n", start)
	h := newHarness(t, map[string]string{"METADATA_URI": path, "METADATA_MISS_REFRESH_INTERVAL": "10ms"}, nil)
	h.serve(sampleRequest(t, "push.http")) // the first load
	write("device_id,asset_tag\nvr-0001,A1\nvr-9999,A9\n", start.Add(time.Second))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		h.out.Reset()
		if resp := h.serve(sampleRequest(t, "unknown_device.http")); resp.Code != http.StatusNoContent {
			t.Fatalf("POST = %d %q, want 204", resp.Code, resp.Body)
		}
		if rows, _ := h.output(t); len(rows) == 1 && rows[0].DeviceFound {
			if rows[0].AssetTag != "A9" {
				t.Errorf("row = %+v, want the new device's asset tag A9", rows[0])
			}
			return
		}
		if time.Now().After(deadline) { // liveness: the TTL is an hour
			t.Fatal("the device added to the file is still unknown after 30 s of misses")
		}
	}
}

// TestNotAPostIsNoEvent: Pub/Sub and Eventarc deliver with POST; a GET
// (an uptime check pointed at the function) is answered 405 and writes
// nothing, where it used to become an invalid_envelope error record.
func TestNotAPostIsNoEvent(t *testing.T) {
	h := newHarness(t, nil, nil)
	for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodPut} {
		resp := h.serve(httptest.NewRequest(method, "/healthz", nil))
		if resp.Code != http.StatusMethodNotAllowed || resp.Header().Get("Allow") != http.MethodPost {
			t.Errorf("%s = %d, Allow %q; want 405, Allow POST", method, resp.Code, resp.Header().Get("Allow"))
		}
	}
	if h.out.Len() != 0 || h.logs.Len() != 0 {
		t.Errorf("stdout %q, log %q; want nothing", h.out.String(), h.logs.String())
	}
}

// TestPushEnvelopeKeepsSubscriptionAndAttempt: the raw push path keeps
// what the framework's own conversion drops.
func TestPushEnvelopeKeepsSubscriptionAndAttempt(t *testing.T) {
	h := newHarness(t, nil, nil)
	if resp := h.serve(sampleRequest(t, "push.http")); resp.Code != http.StatusNoContent {
		t.Fatalf("POST push.http = %d", resp.Code)
	}
	rows, _ := h.output(t)
	if len(rows) != 1 || rows[0].Subscription != "projects/demo/subscriptions/device-events-push" {
		t.Errorf("rows = %+v, want one row with the push subscription", rows)
	}
}

func TestPayloadOverLimitIsRecorded(t *testing.T) {
	h := newHarness(t, map[string]string{"MAX_PAYLOAD_BYTES": "20"}, nil)
	if resp := h.serve(sampleRequest(t, "push.http")); resp.Code != http.StatusNoContent {
		t.Fatalf("POST = %d %q, want 204", resp.Code, resp.Body)
	}
	rows, recs := h.output(t)
	if len(rows) != 0 || len(recs) != 1 || recs[0].Reason != enrich.ReasonPayloadTooLarge {
		t.Errorf("rows %v, error records %+v; want one payload_too_large record", rows, recs)
	}
}

// TestRequestOverLimitIsRefused: a body over MAX_REQUEST_BYTES is refused
// before decoding, and nothing is written.
func TestRequestOverLimitIsRefused(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.f.maxBody = 100 // below what the configuration allows, for a small test
	if resp := h.serve(sampleRequest(t, "push.http")); resp.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("POST = %d %q, want 413", resp.Code, resp.Body)
	}
	line := h.logLine(t, "request refused, Pub/Sub will redeliver it")
	if h.out.Len() != 0 || line["severity"] != "ERROR" || !strings.Contains(fmt.Sprint(line["error"]), "MAX_REQUEST_BYTES") {
		t.Errorf("stdout %q, log line %v: want nothing written and an ERROR naming MAX_REQUEST_BYTES", h.out.String(), line)
	}
}

// TestMetadataUnavailableAnswers500: metadata never loaded is transient,
// so Pub/Sub redelivers; a poison message is still recorded.
func TestMetadataUnavailableAnswers500(t *testing.T) {
	path := filepath.Join(t.TempDir(), "devices.csv")
	if err := os.WriteFile(path, []byte("device_id,asset_tag\nvr-0001,A1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, map[string]string{"METADATA_URI": path}, nil)
	os.Remove(path)
	resp := h.serve(sampleRequest(t, "push.http"))
	if resp.Code != http.StatusInternalServerError {
		t.Fatalf("POST with no metadata = %d, want 500", resp.Code)
	}
	if !strings.Contains(h.logs.String(), `"message_id":"1001"`) || !strings.Contains(h.logs.String(), `"severity":"ERROR"`) {
		t.Errorf("log %q lacks an ERROR line with the message id", h.logs.String())
	}
	if resp := h.serve(sampleRequest(t, "bad_not_json.http")); resp.Code != http.StatusNoContent {
		t.Errorf("POST poison message with no metadata = %d, want 204", resp.Code)
	}
	if rows, recs := h.output(t); len(rows) != 0 || len(recs) != 1 {
		t.Errorf("wrote %d rows, %d error records; want 0, 1", len(rows), len(recs))
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// TestSinkFailureAnswers500: when the row or the error record cannot be
// written, the message is not acknowledged, and the log line says why; for
// a poison message, also why it needed a record.
func TestSinkFailureAnswers500(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"push.http", "disk full"},
		{"bad_not_json.http", "store the error record of a poison message (invalid_json): stdout sink: disk full"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			h := newHarness(t, nil, failingWriter{})
			if resp := h.serve(sampleRequest(t, tc.file)); resp.Code != http.StatusInternalServerError {
				t.Errorf("POST %s with a failing sink = %d, want 500", tc.file, resp.Code)
			}
			if line := h.logLine(t, "event not processed, Pub/Sub will redeliver it"); !strings.Contains(fmt.Sprint(line["error"]), tc.want) {
				t.Errorf("log line %v does not say %q", line, tc.want)
			}
		})
	}
}

// TestErrorLogCarriesTrace: an error log line is linked to the request's trace.
func TestErrorLogCarriesTrace(t *testing.T) {
	h := newHarness(t, map[string]string{"GOOGLE_CLOUD_PROJECT": "demo"}, failingWriter{})
	h.serve(sampleRequest(t, "eventarc_binary.http"))
	if want := `"logging.googleapis.com/trace":"projects/demo/traces/4bf92f3577b34da6a3ce929d0e0e4736"`; !strings.Contains(h.logs.String(), want) {
		t.Errorf("log %q lacks %s", h.logs.String(), want)
	}
}

// TestNoInfoLinePerEvent: successful events log nothing at the default level.
func TestNoInfoLinePerEvent(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.serve(sampleRequest(t, "push.http")) // the first loads the metadata, which logs once
	if line := h.logLine(t, "metadata loaded"); line["severity"] != "INFO" || line["rows"] == nil || !(line["table_bytes"] != nil && line["table_bytes"].(float64) > 0) {
		t.Errorf("load log line %v, want an INFO with rows and table_bytes", line)
	}
	h.logs.Reset()
	for range 3 {
		h.serve(sampleRequest(t, "push.http"))
	}
	if h.logs.Len() != 0 {
		t.Errorf("successful events logged %q, want nothing", h.logs.String())
	}
}

// TestReadBodySizes checks readBody (measured by BenchmarkReadBody) on
// bodies around its buffer sizes, with a right, missing or oversized
// Content-Length, into no buffer or a used one of some size: it must return
// the body exactly, or refuse one over the limit.
func TestReadBodySizes(t *testing.T) {
	const limit = 200 << 10
	for _, n := range []int{0, 1, 511, 512, 513, 676, largeBody, largeBody + 1, 150 << 10, limit, limit + 1} {
		want := bytes.Repeat([]byte("0123456789abcdef"), n/16+1)[:n]
		for _, contentLength := range []int64{int64(n), -1, int64(limit)} {
			for _, used := range []int{0, 600, maxPooledBody} {
				buf := bytes.Repeat([]byte{'x'}, used)
				req := httptest.NewRequest("POST", "/", bytes.NewReader(want))
				req.ContentLength = contentLength
				f := &function{maxBody: limit, bodies: newBodyBudget(4 * limit)}
				got, taken, err := f.readBody(httptest.NewRecorder(), req, buf)
				f.bodies.release(taken)
				switch {
				case n > limit && !errors.Is(err, errBodyTooLarge):
					t.Errorf("readBody(%d bytes, Content-Length %d, %d-byte buffer) = %d bytes, %v; want errBodyTooLarge", n, contentLength, used, len(got), err)
				case n <= limit && (err != nil || !bytes.Equal(got, want)):
					t.Errorf("readBody(%d bytes, Content-Length %d, %d-byte buffer) = %d bytes, %v; want the body", n, contentLength, used, len(got), err)
				}
			}
		}
	}
}

// keepingSink is a sink that keeps what it is given, as sink.Sink allows
// (the BigQuery sink keeps a batch's rows and records until the append
// that holds them is answered, which may be after the call returned).
type keepingSink struct {
	rows []enrich.Row
	recs []enrich.ErrorRecord
}

func (s *keepingSink) WriteRows(_ context.Context, rows []enrich.Row) error {
	s.rows = append(s.rows, rows...)
	return nil
}

func (s *keepingSink) WriteErrors(_ context.Context, recs []enrich.ErrorRecord) error {
	s.recs = append(s.recs, recs...)
	return nil
}

// TestBodyBufferReusedOnlyWhenFree: request bodies are read into buffers
// that later requests reuse (bodyBuffers), so nothing a sink may keep can
// point into one. The error record of an envelope that cannot be decoded
// carries the body itself as its payload: that buffer must never be
// reused. Rows hold copies. A build that reuses every buffer fails here, as
// does one whose rows point into the body.
func TestBodyBufferReusedOnlyWhenFree(t *testing.T) {
	h := newHarness(t, nil, nil)
	keep := &keepingSink{}
	h.f.sink = keep
	post := func(body string) {
		t.Helper()
		req := httptest.NewRequest("POST", "/", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if resp := h.serve(req); resp.Code != http.StatusNoContent {
			t.Fatalf("POST %q = %d %q, want 204", body, resp.Code, resp.Body)
		}
	}
	poison := `{"message":{"data":"` + strings.Repeat("A", 200) + `","messageId":"poison"` // cut short
	post(poison)
	var ids []string
	for i := range 50 {
		id := fmt.Sprintf("reuse-%03d", i)
		data := base64.StdEncoding.EncodeToString([]byte(`{"device_id":"vr-0001","event":"` + strings.Repeat("z", i) + `"}`))
		post(`{"message":{"data":"` + data + `","messageId":"` + id + `","publishTime":"2026-11-24T08:00:00Z"},"subscription":"projects/p/subscriptions/` + id + `"}`)
		ids = append(ids, id)
	}
	if len(keep.recs) != 1 || string(keep.recs[0].Payload) != poison {
		t.Errorf("error records %+v; want one whose payload is still the poison body %q", keep.recs, poison)
	}
	if len(keep.rows) != len(ids) {
		t.Fatalf("%d rows, want %d", len(keep.rows), len(ids))
	}
	for i, r := range keep.rows {
		if r.MessageID != ids[i] || r.Subscription != "projects/p/subscriptions/"+ids[i] ||
			!strings.Contains(string(r.Payload), strings.Repeat("z", i)+`"`) {
			t.Errorf("row %d = message %q, subscription %q, payload %s; changed after its request", i, r.MessageID, r.Subscription, r.Payload)
		}
	}
}
