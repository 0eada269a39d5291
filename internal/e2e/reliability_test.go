package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Log messages of the function that the scenarios count.
const (
	// logRedeliver is logged (ERROR) each time the function answers 5xx.
	logRedeliver = "event not processed, Pub/Sub will redeliver it"
	// logPoison is logged (WARNING) each time a poison message is recorded.
	logPoison = "poison message recorded in the error-records table"
)

// TestReliability runs the fault matrix of issue 4, in its order. Each
// scenario ends with one line:
//
//	scenario=NAME published=N rows=N error_records=N duplicates=N lost=N
func TestReliability(t *testing.T) {
	h := newHarness(t)
	for _, sc := range []struct {
		name string
		run  func(*harness, *testing.T, string)
	}{
		{"happy_path", happyPath},
		{"gcs_down_at_cold_start", gcsDownAtColdStart},
		{"gcs_down_during_refresh", gcsDownDuringRefresh},
		{"metadata_updated", metadataUpdated},
		{"metadata_rejected", metadataRejected},
		{"bigquery_unavailable", bigQueryUnavailable},
		{"poison_messages", poisonMessages},
		{"sigkill_in_flight", sigkillInFlight},
		{"cold_start_concurrency", coldStartConcurrency},
	} {
		t.Run(sc.name, func(t *testing.T) { sc.run(h, t, sc.name) })
	}
}

// waitFor polls cond every 100ms until it holds, failing the test after
// timeout with a message saying what was awaited.
func (s *scenario) waitFor(timeout time.Duration, what string, cond func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			s.t.Fatalf("after %v, still waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// publishUntil publishes a few events every 300ms, each wave awaited,
// until cond holds, at most timeout. The waves are what make the function
// look at its metadata again once the TTL has passed: the cache has no
// timer of its own. It returns the ids published.
func (s *scenario) publishUntil(timeout time.Duration, what string, cond func() bool) []string {
	s.t.Helper()
	var ids []string
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			s.t.Fatalf("after %v of publishing, still waiting for %s", timeout, what)
		}
		wave := s.publishEvents(5)
		s.await(wave)
		ids = append(ids, wave...)
		time.Sleep(300 * time.Millisecond)
	}
	return ids
}

// linesMentioning returns the function's log lines that mention text.
func (s *scenario) linesMentioning(text string) []logLine {
	var out []logLine
	for _, l := range s.logLines() {
		if strings.Contains(l.raw, text) {
			out = append(out, l)
		}
	}
	return out
}

// wantOnlyVersion fails unless every row of the messages in ids carries
// metadata_version gen.
func (s *scenario) wantOnlyVersion(ids []string, gen int64, what string) {
	s.t.Helper()
	got := s.rowsByVersion(ids)
	if len(got) != 1 || got[gen] == 0 {
		s.t.Errorf("%s: rows by metadata_version = %v, want all %d on %d", what, got, len(ids), gen)
	}
}

func gen(g int64) string { return fmt.Sprint(g) }
