package enrichevent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/devicestream/enrichevent/enrich"
)

// watchedBody is a request body that counts its reads.
type watchedBody struct {
	r     io.Reader
	reads atomic.Int32
}

func (b *watchedBody) Read(p []byte) (int, error) {
	b.reads.Add(1)
	return b.r.Read(p)
}

// pushOfSize returns a push request for a known device whose body is at
// least size bytes (the event carries padding), with its body watched.
func pushOfSize(id string, size int) (*http.Request, *watchedBody) {
	event := `{"device_id":"vr-0001","pad":"` + strings.Repeat("p", size*3/4) + `"}`
	body := `{"message":{"data":"` + base64.StdEncoding.EncodeToString([]byte(event)) + `","messageId":"` + id +
		`","publishTime":"2026-11-24T08:00:00Z"},"subscription":"projects/p/subscriptions/s"}`
	watched := &watchedBody{r: strings.NewReader(body)}
	req := httptest.NewRequest("POST", "/", watched)
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/json")
	return req, watched
}

// holdingSink is a sink whose WriteRows waits until release is closed, so
// that a request stays in flight. It is safe for concurrent use.
type holdingSink struct {
	entered chan string // the message id of each row written
	release chan struct{}
	mu      sync.Mutex
	keepingSink
}

func (s *holdingSink) WriteRows(ctx context.Context, rows []enrich.Row) error {
	s.entered <- rows[0].MessageID
	<-s.release
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keepingSink.WriteRows(ctx, rows)
}

// rowCount returns how many rows were written.
func (s *holdingSink) rowCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.rows)
}

// TestLargeBodiesWaitForTheBudget: a large body is read only once its
// bytes are free in the function's budget for large bodies, so that a
// burst of large messages cannot take more memory than the budget allows;
// small bodies never wait. With room for one large body, a second waits
// unread while the first is in flight, and is handled once it is answered.
func TestLargeBodiesWaitForTheBudget(t *testing.T) {
	h := newHarness(t, nil, nil)
	snk := &holdingSink{entered: make(chan string, 3), release: make(chan struct{})}
	h.f.sink = snk
	first, _ := pushOfSize("large-1", 200<<10)
	second, secondBody := pushOfSize("large-2", 200<<10)
	h.f.bodies = newBodyBudget(first.ContentLength + second.ContentLength - 1)

	answers := make(chan int, 3)
	go func() { answers <- h.serve(first).Code }()
	if id := <-snk.entered; id != "large-1" {
		t.Fatalf("first row written is %s, want large-1", id)
	}
	go func() { answers <- h.serve(second).Code }()
	small, _ := pushOfSize("small", 1<<10)
	go func() { answers <- h.serve(small).Code }()
	if id := <-snk.entered; id != "small" {
		t.Fatalf("row written while large-1 is in flight is %s, want small (a small body does not wait)", id)
	}
	time.Sleep(50 * time.Millisecond) // time enough for a read that should not happen
	if n := secondBody.reads.Load(); n != 0 {
		t.Fatalf("the second large body was read %d times while the first held the budget, want 0", n)
	}
	close(snk.release)
	if id := <-snk.entered; id != "large-2" {
		t.Fatalf("row written after large-1 is %s, want large-2", id)
	}
	for range 3 {
		if code := <-answers; code != http.StatusNoContent {
			t.Errorf("answer %d, want 204", code)
		}
	}
	if n := snk.rowCount(); n != 3 {
		t.Errorf("%d rows, want 3", n)
	}
}

// TestLargeBodyGivesUpWhenTheRequestEnds: a large body that is still
// waiting for the budget when its request ends (Pub/Sub's deadline, the
// client gone) is answered 503 unread, with a log line, and Pub/Sub
// redelivers it.
func TestLargeBodyGivesUpWhenTheRequestEnds(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.f.bodies = newBodyBudget(1 << 20)
	if err := h.f.bodies.acquire(context.Background(), 1<<20); err != nil { // all of it in flight
		t.Fatal(err)
	}
	req, body := pushOfSize("large", 200<<10)
	ctx, cancel := context.WithTimeout(req.Context(), 20*time.Millisecond)
	defer cancel()
	if resp := h.serve(req.WithContext(ctx)); resp.Code != http.StatusServiceUnavailable {
		t.Errorf("answer %d %q, want 503", resp.Code, resp.Body)
	}
	if n := body.reads.Load(); n != 0 {
		t.Errorf("body read %d times, want unread", n)
	}
	if rows, recs := h.output(t); len(rows)+len(recs) != 0 {
		t.Errorf("rows %v, error records %v; want nothing written", rows, recs)
	}
	if !strings.Contains(h.logs.String(), "no memory free for a large body") {
		t.Errorf("log %q does not say why the request was not read", h.logs.String())
	}
}

// TestRequestOverLimitIsRefusedUnread: a Content-Length over
// MAX_REQUEST_BYTES is refused without reading the body (or taking any of
// the budget).
func TestRequestOverLimitIsRefusedUnread(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.f.maxBody = 100000 // below what the configuration allows, for a small test
	req, body := pushOfSize("too-large", 200<<10)
	if resp := h.serve(req); resp.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("answer %d %q, want 413", resp.Code, resp.Body)
	}
	if n := body.reads.Load(); n != 0 {
		t.Errorf("body read %d times, want unread", n)
	}
}

// TestLargeBodyBudgetSize: large bodies may use a quarter of the Go memory
// limit (at bodyMemoryFactor times their size), or four of the largest
// bodies without a limit; the largest body always fits.
func TestLargeBodyBudgetSize(t *testing.T) {
	const maxRequest = 12 << 20
	for _, tc := range []struct {
		memLimit, want int64
	}{
		{math.MaxInt64, 4 * maxRequest},
		{409 << 20, (409 << 20) / 16},
		{1 << 30, 64 << 20},
		{64 << 20, maxRequest}, // a quarter is 4 MiB: one largest body still fits
	} {
		if got := largeBodyBudget(maxRequest, tc.memLimit); got != tc.want {
			t.Errorf("largeBodyBudget(%d, %d) = %d, want %d", maxRequest, tc.memLimit, got, tc.want)
		}
	}
}

// TestBodyTaken: what a request takes from the budget for its body, by
// Content-Length and actual size: nothing for a small body, its
// Content-Length for a large one, the limit for a body of unknown length
// only once more than largeBody bytes have arrived, and nothing for a body
// refused unread.
func TestBodyTaken(t *testing.T) {
	const limit = 1 << 20
	for _, tc := range []struct {
		contentLength int64
		size          int
		want          int64
	}{
		{0, 0, 0},
		{676, 676, 0},
		{largeBody, largeBody, 0},
		{largeBody + 1, largeBody + 1, largeBody + 1},
		{limit, limit, limit},
		{limit + 1, limit + 1, 0}, // refused unread
		{-1, 676, 0},              // unknown length, small: never waits
		{-1, largeBody, 0},
		{-1, largeBody + 1, limit}, // unknown length, large: as much as may arrive
		{-1, limit + 1, limit},     // refused once over the limit
	} {
		f := &function{maxBody: limit, bodies: newBodyBudget(4 * limit)}
		req := httptest.NewRequest("POST", "/", bytes.NewReader(make([]byte, tc.size)))
		req.ContentLength = tc.contentLength
		_, taken, _ := f.readBody(httptest.NewRecorder(), req, nil)
		if taken != tc.want {
			t.Errorf("Content-Length %d, %d bytes: took %d of the budget, want %d", tc.contentLength, tc.size, taken, tc.want)
		}
	}
}

// TestLargeBodyMemory: reading a large body allocates its size once, not
// the sum of a growing buffer's sizes (append grows a large slice by a
// quarter at a time: about five times the body in all).
func TestLargeBodyMemory(t *testing.T) {
	const size = 12 << 20
	for _, contentLength := range []int64{size, -1} {
		req := httptest.NewRequest("POST", "/", bytes.NewReader(make([]byte, size)))
		req.ContentLength = contentLength
		before := totalAlloc()
		f := &function{maxBody: 16 << 20, bodies: newBodyBudget(64 << 20)}
		body, _, err := f.readBody(httptest.NewRecorder(), req, nil)
		got := totalAlloc() - before
		if err != nil || len(body) != size {
			t.Fatalf("readBody = %d bytes, %v; want %d bytes", len(body), err, size)
		}
		want := uint64(size + size/100) // one allocation of the body, and a little
		if contentLength < 0 {
			want = 3 * size // doubling to 16 MiB: the sizes before the last sum to less than it
		}
		if got > want {
			t.Errorf("reading %d bytes with Content-Length %d allocated %d bytes, want at most %d", size, contentLength, got, want)
		}
	}
}

// totalAlloc is the bytes allocated so far by the process.
func totalAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// fullBudget gives h's function a budget of one large body and takes all
// of it, as a large request in flight would.
func fullBudget(t *testing.T, h *harness) {
	t.Helper()
	h.f.bodies = newBodyBudget(1 << 20)
	if err := h.f.bodies.acquire(context.Background(), 1<<20); err != nil {
		t.Fatal(err)
	}
}

// TestLargeBodyWaitIsBounded: net/http does not end a request's context
// when its client goes away while the body is unread, so a large body
// waits for the budget at most bodyBudget.wait, then answers 503 unread.
func TestLargeBodyWaitIsBounded(t *testing.T) {
	h := newHarness(t, nil, nil)
	fullBudget(t, h)
	h.f.bodies.wait = 30 * time.Millisecond
	req, body := pushOfSize("large", 200<<10) // its context never ends
	if resp := h.serve(req); resp.Code != http.StatusServiceUnavailable {
		t.Errorf("answer %d %q, want 503", resp.Code, resp.Body)
	}
	if n := body.reads.Load(); n != 0 {
		t.Errorf("body read %d times, want unread", n)
	}
}

// TestSmallBodyOfUnknownLengthDoesNotWait: a body without a
// Content-Length takes nothing from the budget until it turns out large.
func TestSmallBodyOfUnknownLengthDoesNotWait(t *testing.T) {
	h := newHarness(t, nil, nil)
	fullBudget(t, h)
	h.f.bodies.wait = 30 * time.Millisecond
	req, _ := pushOfSize("small", 1<<10)
	req.ContentLength = -1
	if resp := h.serve(req); resp.Code != http.StatusNoContent {
		t.Errorf("answer %d %q, want 204", resp.Code, resp.Body)
	}
	large, _ := pushOfSize("large", 200<<10)
	large.ContentLength = -1
	if resp := h.serve(large); resp.Code != http.StatusServiceUnavailable {
		t.Errorf("large body of unknown length: answer %d %q, want 503", resp.Code, resp.Body)
	}
}

// slowSink is a sink whose writes take a while, and fail if their context
// ends meanwhile.
type slowSink struct{ delay time.Duration }

func (s slowSink) WriteRows(ctx context.Context, _ []enrich.Row) error {
	select {
	case <-time.After(s.delay):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s slowSink) WriteErrors(ctx context.Context, _ []enrich.ErrorRecord) error {
	return s.WriteRows(ctx, nil)
}

// TestLargeBodyReadDeadline, over a real connection: a large body that
// has its bytes must arrive within bodyBudget.readTimeout, so that a
// sender that stalls gives the budget back (the request is refused and the
// next large body goes through); and the deadline ends with the read
// (net/http clears it), so that a request whose sink takes longer is not
// cancelled by it.
func TestLargeBodyReadDeadline(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.f.sink = slowSink{delay: 1500 * time.Millisecond} // longer than the read deadline
	h.f.bodies = newBodyBudget(300 << 10)               // room for one of these bodies
	h.f.bodies.wait = 10 * time.Second
	h.f.bodies.readTimeout = time.Second // ample for 200 KiB on loopback, even under -race
	srv := httptest.NewServer(h.f)
	defer srv.Close()

	stalled, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	fmt.Fprintf(stalled, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"message\":", 200<<10)
	stalled.SetReadDeadline(time.Now().Add(10 * time.Second)) // not for ever if the server never answers
	status, err := bufio.NewReader(stalled).ReadString('\n')
	if err != nil || !strings.Contains(status, " 400 ") {
		t.Errorf("stalled sender answered %q, %v; want 400 once its body is late", status, err)
	}

	req, _ := pushOfSize("after-stall", 200<<10)
	resp, err := http.Post(srv.URL, "application/json", req.Body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("large push after the stalled one = %d, want 204 (budget given back, and a sink slower than the read deadline is not cancelled)", resp.StatusCode)
	}
}

// TestMetadataTableLimit: a devices table may keep 45 % of the Go memory
// limit, so that a refresh (two tables) fits it; a million devices of the
// sample's columns (171 bytes each, enrich's TestParseMetadataWithinLimit
// measures Bytes) fit deploy.sh's 409MiB; 1 GiB without a limit.
func TestMetadataTableLimit(t *testing.T) {
	if got := metadataTableLimit(math.MaxInt64); got != 1<<30 {
		t.Errorf("metadataTableLimit(none) = %d, want 1 GiB", got)
	}
	if got, million := metadataTableLimit(409<<20), int64(1_000_000*171); got < million || got > (409<<20)/2 {
		t.Errorf("metadataTableLimit(409 MiB) = %d, want at least a million devices (%d) and at most half the limit", got, million)
	}
}
