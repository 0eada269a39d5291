package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/devicestream/enrichevent/enrich"
	"github.com/devicestream/enrichevent/sink"
)

// TestTemplatesPadded: -pad makes each event that many bytes larger, still
// a valid event of its device, with a Content-Length that matches.
func TestTemplatesPadded(t *testing.T) {
	const pad = 2 << 20
	tmpls, err := buildTemplates(shapePush, "127.0.0.1:1", []string{"vr-0000001"}, 1, pad)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(tmpls[0].appendTo(nil, 1, 0, 0))))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil || int64(len(body)) != req.ContentLength {
		t.Fatalf("body of %d bytes, %v; Content-Length %d", len(body), err, req.ContentLength)
	}
	env, err := enrich.DecodePush(body)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := enrich.Options{MaxPayloadBytes: 2 * pad}.ParseEvent(env.Message.Data)
	if err != nil || ev.DeviceID != "vr-0000001" {
		t.Fatalf("ParseEvent = device %q, %v; want vr-0000001", ev.DeviceID, err)
	}
	if n := len(env.Message.Data); n < pad+250 || n > pad+350 {
		t.Errorf("payload of %d bytes, want about %d", n, pad+300)
	}
}

// TestTemplates checks that every request loadgen sends is what Pub/Sub
// or Eventarc would send: a valid HTTP request whose body is a push
// envelope with a ~300-byte event of a known device, and a message id
// that differs per request.
func TestTemplates(t *testing.T) {
	devices := []string{"vr-0000001", "vr-0000002", "vr-0000003"}
	for _, shape := range []string{shapePush, shapeCloudEvent} {
		t.Run(shape, func(t *testing.T) {
			tmpls, err := buildTemplates(shape, "127.0.0.1:1", devices, 4, 0)
			if err != nil {
				t.Fatal(err)
			}
			for i, tmpl := range tmpls {
				seen := map[string]bool{}
				for _, id := range []struct {
					phase, worker int
					seq           uint64
				}{{1, 0, 0}, {1, 0, 1}, {1, 1, 0}, {2, 0, 0}, {999, 99999, 999999999999}} {
					raw := tmpl.appendTo(nil, id.phase, id.worker, id.seq)
					req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
					if err != nil {
						t.Fatalf("template %d: ReadRequest: %v", i, err)
					}
					body, err := io.ReadAll(req.Body)
					if err != nil || int64(len(body)) != req.ContentLength {
						t.Fatalf("template %d: body of %d bytes, %v; Content-Length %d", i, len(body), err, req.ContentLength)
					}
					env, err := enrich.DecodePush(body)
					if err != nil {
						t.Fatalf("template %d: DecodePush: %v", i, err)
					}
					ev, err := enrich.Options{}.ParseEvent(env.Message.Data)
					if err != nil {
						t.Fatalf("template %d: ParseEvent: %v", i, err)
					}
					if want := devices[i%len(devices)]; ev.DeviceID != want {
						t.Errorf("template %d: device %q, want %q", i, ev.DeviceID, want)
					}
					if n := len(env.Message.Data); n < 250 || n > 350 {
						t.Errorf("template %d: payload of %d bytes, want about 300", i, n)
					}
					mid := env.Message.MessageID
					if len(mid) != idLen || strings.Trim(mid, "0123456789") != "" {
						t.Errorf("template %d: message id %q, want %d digits", i, mid, idLen)
					}
					if shape == shapeCloudEvent && req.Header.Get("Ce-Id") != mid {
						t.Errorf("template %d: Ce-Id %q, want the message id %q", i, req.Header.Get("Ce-Id"), mid)
					}
					if seen[mid] {
						t.Errorf("template %d: message id %q repeated for %+v", i, mid, id)
					}
					seen[mid] = true
				}
			}
		})
	}
}

// TestReadResponse reads responses of every framing from one stream: each
// must be consumed exactly, or the next one would not parse.
func TestReadResponse(t *testing.T) {
	tests := []struct {
		name      string
		raw       string
		code      int
		keepAlive bool
	}{
		{"204", "HTTP/1.1 204 No Content\r\nDate: x\r\n\r\n", 204, true},
		{"content-length", "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\nboom\n", 500, true},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: t\r\n\r\n", 200, true},
		{"connection close", "HTTP/1.1 413 Request Entity Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 413, false},
		{"http/1.0", "HTTP/1.0 204 No Content\r\n\r\n", 204, false},
	}
	var stream bytes.Buffer
	for _, tt := range tests {
		stream.WriteString(tt.raw)
	}
	br := bufio.NewReader(&stream)
	for _, tt := range tests {
		code, keepAlive, err := readResponse(br)
		if err != nil || code != tt.code || keepAlive != tt.keepAlive {
			t.Errorf("readResponse(%s) = %d, %v, %v; want %d, %v, nil", tt.name, code, keepAlive, err, tt.code, tt.keepAlive)
		}
	}
	if _, _, err := readResponse(bufio.NewReader(strings.NewReader("HTTP/1.1 200 OK\r\n\r\nto the end"))); err != nil {
		t.Errorf("readResponse(body to EOF) = %v", err)
	}
	for _, bad := range []string{"SMTP ready\r\n", "HTTP/1.1 2x0 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nno colon\r\n\r\n"} {
		if _, _, err := readResponse(bufio.NewReader(strings.NewReader(bad))); err == nil {
			t.Errorf("readResponse(%q) = nil error, want one", bad)
		}
	}
}

// TestPhaseCounts drives a server that fails every third request: loadgen
// must count exactly the answers the server gave, every message id must
// be distinct, and no request may be lost.
func TestPhaseCounts(t *testing.T) {
	var mu sync.Mutex
	ids := map[string]int{}
	served, failed := 0, 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		env, err := enrich.DecodePush(body)
		mu.Lock()
		defer mu.Unlock()
		served++
		ids[env.Message.MessageID]++
		if err != nil || served%3 == 0 {
			failed++
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	tmpls, err := buildTemplates(shapePush, addr, []string{"vr-0000001"}, 8, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := &phase{name: "test", num: 1, addr: addr, templates: tmpls, clients: 3, duration: 200 * time.Millisecond}
	r := summarise(p.name, p.duration, p.run())

	mu.Lock()
	defer mu.Unlock()
	if r.transport != 0 {
		t.Fatalf("%d transport errors, last %v", r.transport, r.lastErr)
	}
	if len(r.samples) != served || r.non2xx[http.StatusServiceUnavailable] != int64(failed) {
		t.Errorf("loadgen saw %d answers, %d of them 503; the server gave %d, %d of them 503",
			len(r.samples), r.non2xx[http.StatusServiceUnavailable], served, failed)
	}
	if served < 3 {
		t.Errorf("only %d requests in %v", served, p.duration)
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("message id %q sent %d times", id, n)
		}
	}
}

// TestRotate checks the order of the servers in each round: every round
// starts one server later, so that no server always runs last.
func TestRotate(t *testing.T) {
	servers := []string{"bare", "framework", "function"}
	for n, want := range []string{"bare framework function", "framework function bare",
		"function bare framework", "bare framework function"} {
		if got := strings.Join(rotate(servers, n), " "); got != want {
			t.Errorf("rotate(%v, %d) = %s, want %s", servers, n, got, want)
		}
	}
	if got := strings.Join(servers, " "); got != "bare framework function" {
		t.Errorf("rotate changed its argument: %s", got)
	}
}

// TestBareHandlerWork checks the baselines' handler: it reads the whole
// body and answers 204, and with work it takes at least that long.
func TestBareHandlerWork(t *testing.T) {
	for _, work := range []time.Duration{0, 20 * time.Millisecond} {
		body := &countingReader{r: strings.NewReader(strings.Repeat("x", 5000))}
		req := httptest.NewRequest("POST", "/", body)
		rec := httptest.NewRecorder()
		start := time.Now()
		bareHandler(work)(rec, req)
		if took := time.Since(start); took < work || rec.Code != http.StatusNoContent || body.n != 5000 {
			t.Errorf("bareHandler(%v): %d after %v, %d body bytes read; want 204 after at least %v, 5000 bytes",
				work, rec.Code, took, body.n, work)
		}
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestPeakRSS reads loadgen's own peak resident memory, which is at least
// what it holds now.
func TestPeakRSS(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("read from /proc")
	}
	held := make([]byte, 64<<20)
	for i := range held {
		held[i] = 1 // resident
	}
	if got := peakRSS(os.Getpid()); got < int64(len(held)) {
		t.Errorf("peakRSS = %d bytes, want at least the %d resident now", got, len(held))
	}
	runtime.KeepAlive(held)
}

// TestMachineCPU reads the machine's CPU time twice around 100 ms of
// wall time: it grows, and idle and stolen time are parts of it.
func TestMachineCPU(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("read from /proc")
	}
	start, ok := machineCPU()
	if !ok {
		t.Fatal("machineCPU: /proc/stat not read")
	}
	time.Sleep(100 * time.Millisecond)
	end, ok := machineCPU()
	if !ok {
		t.Fatal("machineCPU: /proc/stat not read")
	}
	d := end.sub(start)
	if d.total <= 0 || d.idle < 0 || d.steal < 0 || d.idle+d.steal > d.total {
		t.Errorf("over 100 ms: %+v, want total > 0 and idle, steal within it", d)
	}
	if got := d.share(d.total); got != "100.0%" {
		t.Errorf("share of the total = %s, want 100.0%%", got)
	}
	if got := (cpuTicks{}).share(0); got != "-" {
		t.Errorf("share of an unknown total = %s, want -", got)
	}
}

// TestFakeBigQuery starts cmd/bqfake as -bq does: it serves tables.get for
// the rows and error-records tables on the port the function is told, and
// takes a row through the Storage Write API port, answering -bq-latency
// late.
func TestFakeBigQuery(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/bqfake")
	}
	const latency = 300 * time.Millisecond
	bq, err := startFakeBigQuery("github.com/devicestream/enrichevent/cmd/bqfake", t.TempDir(), latency)
	if err != nil {
		t.Fatal(err)
	}
	defer bq.srv.stop()
	if got, want := bq.env["BQ_TABLE"], "local-project.devicestream.events"; got != want {
		t.Errorf("BQ_TABLE = %q, want %q", got, want)
	}
	for _, table := range []string{"events", "events_error_records"} {
		url := "http://" + bq.env["BIGQUERY_EMULATOR_HOST"] + "/bigquery/v2/projects/local-project/datasets/devicestream/tables/" + table
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s, want 200 OK", url, resp.Status)
		}
	}

	ctx := context.Background()
	w, err := sink.NewBigQuery(ctx, sink.BigQueryConfig{
		Project: bqProject, Dataset: bqDataset, Table: bqTable,
		RESTEndpoint: bq.env["BIGQUERY_EMULATOR_HOST"],
		GRPCEndpoint: bq.env["BIGQUERY_STORAGE_EMULATOR_HOST"],
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	now := time.Now()
	row := enrich.Row{MessageID: "m1", PublishTime: now, EventTime: now, IngestTime: now,
		DeviceID: "vr-0000001", Payload: json.RawMessage(`{}`)}
	// The first write also looks the table up and opens the stream; the
	// second is one append.
	for i := range 2 {
		start := time.Now()
		if err := w.WriteRows(ctx, []enrich.Row{row}); err != nil {
			t.Fatalf("write %d: %v", i+1, err)
		}
		if took := time.Since(start); took < latency {
			t.Errorf("write %d took %v, want at least the fake's latency %v", i+1, took, latency)
		}
	}
	if got := w.Stats().Rows; got != 2 {
		t.Errorf("rows stored = %d, want 2", got)
	}
}
