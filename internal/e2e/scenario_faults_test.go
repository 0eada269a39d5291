package e2e

import (
	"errors"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// bigQueryUnavailable: while every append fails, the function answers 5xx
// and Pub/Sub redelivers; once BigQuery is back every event lands.
func bigQueryUnavailable(h *harness, t *testing.T, name string) {
	s := h.newScenario(t, name)
	g := s.upload(baseMetadata())
	f := h.startFunction(s, 0)
	s.subscribe(f.port)
	warm := s.publishEvents(50)
	s.await(warm)

	h.bq.FailNextAppends(1 << 30) // down until told otherwise
	t.Cleanup(func() { h.bq.FailNextAppends(0) })
	appends := h.bq.Appends()
	ids := s.publishEvents(200)
	s.waitFor(60*time.Second, "the function to answer 5xx while BigQuery is down", func() bool {
		return s.logCount(logRedeliver, "ERROR") >= 4
	})
	h.bq.FailNextAppends(0)
	s.await(ids)
	s.wantOnlyVersion(append(warm, ids...), g, "rows")
	t.Logf("while BigQuery was down: %d appends failed, %d answers 5xx",
		h.bq.Appends()-appends, s.logCount(logRedeliver, "ERROR"))
}

// sigkillInFlight: the function is killed (SIGKILL) while appends are in
// flight and restarted on the same port; every event lands, and the only
// duplicates are rows of the same message (same message_id and payload).
func sigkillInFlight(h *harness, t *testing.T, name string) {
	s := h.newScenario(t, name)
	g := s.upload(baseMetadata())
	f := h.startFunction(s, 0)
	s.subscribe(f.port)
	warm := s.publishEvents(20)
	s.await(warm)

	// Slow BigQuery down so that requests are in flight when the
	// function dies: rows are stored on receipt, acknowledged 2s later.
	h.bq.SetLatency(2 * time.Second)
	t.Cleanup(func() { h.bq.SetLatency(0) })
	appends := h.bq.Appends()
	ids := s.publishEvents(300)
	s.waitFor(30*time.Second, "appends in flight", func() bool {
		return h.bq.Appends() >= appends+2
	})
	reached := h.bq.Appends() - appends
	f.kill()
	var exit *exec.ExitError
	if _, err := f.exited(); !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("function exit = %v, want killed by SIGKILL", err)
	}
	h.bq.SetLatency(0)
	h.startFunction(s, f.port)
	tl := s.await(ids)
	s.wantOnlyVersion(append(warm, ids...), g, "rows")
	// check() has matched every row to its published message (payload,
	// device, metadata): a duplicate can only be a repeated message_id.
	if tl.errorRecords != 0 || len(tl.unknown) != 0 {
		t.Errorf("error_records=%d, rows of unpublished message ids %v: want none", tl.errorRecords, tl.unknown)
	}
	t.Logf("killed once %d appends had reached BigQuery; after the restart: %d duplicates (rows stored whose answer never reached Pub/Sub)",
		reached, tl.duplicates)
}
