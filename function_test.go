package enrichevent

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/devicestream/enrichevent/enrich"
)

// TestStartupFailureIsRetried: an instance that could not build its
// function for a passing reason (here a storage client without
// credentials) builds it on a request a second later; it is not broken for
// the rest of its life.
func TestStartupFailureIsRetried(t *testing.T) {
	resetInstance(t)
	t.Setenv("METADATA_URI", "gs://bucket/devices.csv")
	t.Setenv("STORAGE_EMULATOR_HOST", "")
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "missing.json"))
	if _, err := instance(); err == nil || !strings.Contains(err.Error(), "storage client") {
		t.Fatalf("instance() without credentials = %v, want the storage client's error", err)
	}
	t.Setenv("STORAGE_EMULATOR_HOST", "127.0.0.1:1") // no credentials needed
	if _, err := instance(); err == nil {
		t.Fatal("instance() at once after a failure succeeded, want the failure for a second")
	}
	time.Sleep(1100 * time.Millisecond)
	if f, err := instance(); err != nil || f == nil {
		t.Fatalf("instance() a second after a passing failure = %v, %v; want the function", f, err)
	}
}

// TestBadConfigurationIsFinal: a bad configuration is not tried again; it
// needs a new deployment.
func TestBadConfigurationIsFinal(t *testing.T) {
	resetInstance(t)
	t.Setenv("METADATA_TTL", "soon")
	if _, err := instance(); err == nil || !strings.Contains(err.Error(), "METADATA_TTL") {
		t.Fatalf("instance() with METADATA_TTL=soon = %v, want an error naming it", err)
	}
	if !built.final {
		t.Error("a bad configuration is not final")
	}
	rec := httptest.NewRecorder()
	enrichEvent(rec, sampleRequest(t, "push.http"))
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "METADATA_TTL") {
		t.Errorf("a request with METADATA_TTL=soon = %d %q, want 500 naming METADATA_TTL, so that Pub/Sub redelivers", rec.Code, rec.Body)
	}
}

// TestBadConfigurationFailsTheDeploy: on Cloud Run (K_SERVICE set) a bad
// configuration stops the instance before it listens, with the variable
// in its log line, so that the new revision never becomes ready and the
// deploy fails. The test runs this test binary again, which runs init.
func TestBadConfigurationFailsTheDeploy(t *testing.T) {
	if os.Getenv("ENRICHEVENT_CHILD") != "" {
		return // the child: init has passed
	}
	for _, tc := range []struct {
		env  []string
		fail bool
	}{
		{[]string{"K_SERVICE=enrich-event", "METADATA_URI=gs://b/devices.csv", "METADATA_TTL=48h"}, true},
		{[]string{"K_SERVICE=enrich-event", "METADATA_URI=gs://b/devices.csv", "BQ_TABLE=p.d.events"}, false},
		{[]string{"METADATA_TTL=48h"}, false}, // not on Cloud Run: read on first use
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestBadConfigurationFailsTheDeploy$")
		cmd.Env = append(os.Environ(), append(tc.env, "ENRICHEVENT_CHILD=1")...)
		out, err := cmd.CombinedOutput()
		failed := err != nil
		if failed != tc.fail || (tc.fail && !(strings.Contains(string(out), "EnrichEvent cannot start") && strings.Contains(string(out), "METADATA_TTL"))) {
			t.Errorf("starting with %q: err %v, output %q; want failed=%v, and a failure to log EnrichEvent cannot start naming METADATA_TTL",
				tc.env, err, out, tc.fail)
		}
	}
}

// TestDrainCountsARequestUntilItsAnswerIsSent: where SIGTERM drains the
// requests in flight, a request stops counting only once its answer has
// left for the client. The framework still runs deferred work after the
// handler returns, and the drain's os.Exit in that gap would lose an
// answer whose event is stored. The server here blocks after the handler,
// in that gap.
func TestDrainCountsARequestUntilItsAnswerIsSent(t *testing.T) {
	resetInstance(t)
	h := newHarness(t, nil, nil)
	h.f.drains = true
	built.fn.Store(h.f)
	gap, release := make(chan int64, 1), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		enrichEvent(w, r)
		gap <- inFlight.Load()
		<-release
	}))
	defer srv.Close() // after release: Close waits for the handler
	defer close(release)
	answered := make(chan error, 1)
	go func() {
		req := sampleRequest(t, "push.http")
		resp, err := http.Post(srv.URL, "application/json", req.Body)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		answered <- err
	}()
	if n := <-gap; n != 0 {
		t.Fatalf("%d requests counted once the handler returned, want 0", n)
	}
	select {
	case err := <-answered:
		if err != nil {
			t.Errorf("POST = %v, want 204", err)
		}
	case <-time.After(30 * time.Second): // liveness: without the flush, the answer waits for release
		t.Error("no answer while the request counted as done: the drain could exit before it is sent")
	}
}

// panicSink panics on every write.
type panicSink struct{}

func (panicSink) WriteRows(context.Context, []enrich.Row) error           { panic("boom") }
func (panicSink) WriteErrors(context.Context, []enrich.ErrorRecord) error { panic("boom") }

// TestPanicAnswers500WhereSIGTERMDrains: where the drain counts requests
// (on Cloud Run), a panic in the handler still gets the framework's 500:
// the flush that sends the answer before the request stops counting must
// not have sent a 200 first, which Pub/Sub would acknowledge, losing the
// event. The server recovers as the framework does.
func TestPanicAnswers500WhereSIGTERMDrains(t *testing.T) {
	resetInstance(t)
	h := newHarness(t, nil, nil)
	h.f.drains = true
	h.f.sink = panicSink{}
	built.fn.Store(h.f)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { // as funcframework's recoverPanic
			if recover() != nil {
				http.Error(w, "A panic occurred", http.StatusInternalServerError)
			}
		}()
		enrichEvent(w, r)
	}))
	defer srv.Close()
	resp, err := http.Post(srv.URL, "application/json", sampleRequest(t, "push.http").Body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("a panicking handler answered %d, want 500 so that Pub/Sub redelivers", resp.StatusCode)
	}
	if n := inFlight.Load(); n != 0 {
		t.Errorf("%d requests still counted in flight after the panic, want 0", n)
	}
}

// TestMissingLocalMetadataLoadsOnceThere: a local METADATA_URI that is not
// there yet (a volume still mounting) answers 500, and the first request a
// second after the file appears is enriched.
func TestMissingLocalMetadataLoadsOnceThere(t *testing.T) {
	path := filepath.Join(t.TempDir(), "devices.csv")
	h := newHarness(t, map[string]string{"METADATA_URI": path}, nil)
	if resp := h.serve(sampleRequest(t, "push.http")); resp.Code != http.StatusInternalServerError {
		t.Fatalf("POST before the metadata file exists = %d, want 500", resp.Code)
	}
	if err := os.WriteFile(path, []byte("device_id,asset_tag\nvr-0001,A1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // a failed first load is tried again after a second
	if resp := h.serve(sampleRequest(t, "push.http")); resp.Code != http.StatusNoContent {
		t.Fatalf("POST once the metadata file exists = %d %q, want 204", resp.Code, resp.Body)
	}
	if rows, _ := h.output(t); len(rows) != 1 || !rows[0].DeviceFound {
		t.Errorf("rows = %+v, want one row of a found device", rows)
	}
}

// resetInstance clears what instance has built, for a test that builds
// its own, and restores it (the framework tests' function) afterwards.
func resetInstance(t *testing.T) {
	built.mu.Lock()
	fn, err, at, final := built.fn.Load(), built.err, built.at, built.final
	built.fn.Store(nil)
	built.err, built.at, built.final = nil, time.Time{}, false
	built.mu.Unlock()
	t.Cleanup(func() {
		built.mu.Lock()
		defer built.mu.Unlock()
		built.fn.Store(fn)
		built.err, built.at, built.final = err, at, final
	})
}

// TestMetadataTooLargeForTheMemoryLimit: under a Go memory limit, a
// metadata file whose table would keep more than 45 % of it fails its
// load (500, and the error says why) instead of the instance.
func TestMetadataTooLargeForTheMemoryLimit(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(4 << 20)) // a table of 1.8 MiB at most
	var csv strings.Builder
	csv.WriteString("device_id,asset_tag,location_id,tenant_name\n")
	for i := range 20_000 { // about 2.2 MiB of table
		fmt.Fprintf(&csv, "vr-%04d,AT-%d,LOC-%d,acme\n", i, i, i)
	}
	path := filepath.Join(t.TempDir(), "devices.csv")
	if err := os.WriteFile(path, []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, map[string]string{"METADATA_URI": path}, nil)
	debug.SetMemoryLimit(math.MaxInt64) // the test's own allocations are not limited
	resp := h.serve(sampleRequest(t, "push.http"))
	if resp.Code != http.StatusInternalServerError || !strings.Contains(resp.Body.String(), "the devices table would keep more than 1.8 MiB") ||
		!strings.Contains(resp.Body.String(), "deploy with more memory") {
		t.Errorf("POST = %d %q, want 500 saying the table is too large", resp.Code, resp.Body)
	}
}
