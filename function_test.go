package enrichevent

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
