package enrichevent

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLogLimitBucket: a burst of logBurst lines, then one per logEvery; the
// first line after a gap counts the lines left out; a clock that goes back
// refills nothing.
func TestLogLimitBucket(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	l := logLimit{tokens: logBurst, last: t0}
	step := func(at time.Time, wantOK bool, wantSuppressed int) {
		t.Helper()
		if ok, n := l.allow(at); ok != wantOK || n != wantSuppressed {
			t.Fatalf("allow(t0%+v) = %v, suppressed %d; want %v, %d", at.Sub(t0), ok, n, wantOK, wantSuppressed)
		}
	}
	for range logBurst {
		step(t0, true, 0)
	}
	for range 5 {
		step(t0, false, 0)
	}
	step(t0.Add(-time.Hour), false, 0) // backwards: no refill
	step(t0.Add(logEvery/2), false, 0)
	step(t0.Add(logEvery), true, 7)
	step(t0.Add(logEvery), false, 0)
	later := t0.Add(time.Hour) // a quiet hour refills the burst, no more
	step(later, true, 1)
	for range logBurst - 1 {
		step(later, true, 0)
	}
	step(later, false, 0)
}

// TestThinHandlerByMessage: each message has its own bucket, shared by
// the loggers With makes; a line logged after a gap says how many were left
// out; beyond maxThinned messages, new ones are not thinned.
func TestThinHandlerByMessage(t *testing.T) {
	var buf bytes.Buffer
	log := newLogger(&buf, slog.LevelInfo)
	clock := fakeLogClock(log)
	for i := range logBurst + 3 {
		log.With("table", "events").Warn("bigquery append failed", "i", i)
	}
	log.Error("metadata rejected")
	log.Error("bigquery append failed") // the same message at another level
	clock.now = clock.now.Add(logEvery)
	log.Warn("bigquery append failed", "i", "last")
	for i := range maxThinned {
		log.Info(fmt.Sprint("line ", i))
	}
	for range logBurst + 5 {
		log.Info("one message too many")
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	count := func(sub string) (n int) {
		for _, l := range lines {
			if strings.Contains(l, sub) {
				n++
			}
		}
		return n
	}
	if n := count(`"severity":"WARNING","message":"bigquery append failed"`); n != logBurst+1 {
		t.Errorf("%d lines of a message logged %d times, then once a second later; want %d", n, logBurst+4, logBurst+1)
	}
	if n := count(`"severity":"ERROR","message":"bigquery append failed"`); n != 1 {
		t.Errorf("the message at another level: %d lines, want 1 (a bucket of its own)", n)
	}
	if n := count(`"i":"last","suppressed":3`); n != 1 {
		t.Errorf("the line after the gap does not say 3 were suppressed: %q", buf.String())
	}
	if n := count(`"metadata rejected"`); n != 1 {
		t.Errorf("another message was held back: %d lines, want 1", n)
	}
	if n := count(`"one message too many"`); n != logBurst+5 {
		t.Errorf("a message beyond the %d followed logged %d times of %d", maxThinned, n, logBurst+5)
	}
}

// TestRepeatedLogLinesThinned: the lines an outage or a flood of bad input
// repeats for every delivery (a refused request, an event to be redelivered,
// a poison message) are logged for the first logBurst deliveries, then once
// per logEvery with the count of those left out; every delivery is still
// answered and recorded as before, and other lines are not held back.
func TestRepeatedLogLinesThinned(t *testing.T) {
	const n = logBurst + 5
	for _, tc := range []struct {
		name, request, msg string
		status             int
		newHarness         func(t *testing.T) *harness
	}{
		{name: "refused", request: "push.http", msg: "request refused, Pub/Sub will redeliver it", status: http.StatusRequestEntityTooLarge,
			newHarness: func(t *testing.T) *harness {
				h := newHarness(t, nil, nil)
				h.f.maxBody = 100
				return h
			}},
		{name: "redelivered", request: "push.http", msg: "event not processed, Pub/Sub will redeliver it", status: http.StatusInternalServerError,
			newHarness: func(t *testing.T) *harness { return newHarness(t, nil, failingWriter{}) }},
		{name: "poison", request: "bad_not_json.http", msg: "poison message recorded in the error-records table", status: http.StatusNoContent,
			newHarness: func(t *testing.T) *harness { return newHarness(t, nil, nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.newHarness(t)
			clock := fakeLogClock(h.f.log)
			for i := range n + 1 {
				if i == n {
					clock.now = clock.now.Add(logEvery)
				}
				if resp := h.serve(sampleRequest(t, tc.request)); resp.Code != tc.status {
					t.Fatalf("delivery %d = %d %q, want %d", i, resp.Code, resp.Body, tc.status)
				}
			}
			var suppressed []any
			for _, line := range h.logLines(t, tc.msg) {
				suppressed = append(suppressed, line["suppressed"])
			}
			if len(suppressed) != logBurst+1 || suppressed[0] != nil || suppressed[logBurst] != float64(n-logBurst) {
				t.Errorf("%d deliveries, then one %v later: %d lines %q with suppressed %v; want %d, the last with suppressed %d",
					n, logEvery, len(suppressed), tc.msg, suppressed, logBurst+1, n-logBurst)
			}
			if tc.name == "poison" {
				if _, recs := h.output(t); len(recs) != n+1 {
					t.Errorf("%d error records, want one per delivery (%d)", len(recs), n+1)
				}
			}
		})
	}
}

// TestThinnedLinesSummarized: the lines left out at the end of a burst are
// counted by one summary line once the message has been quiet for
// logEvery, not while lines keep coming; at SIGTERM (flushThinned) every
// count left is logged at once.
func TestThinnedLinesSummarized(t *testing.T) {
	var buf bytes.Buffer
	log := newLogger(&buf, slog.LevelInfo)
	clock := fakeLogClock(log)
	t0 := clock.now
	for range logBurst + 5 {
		log.Error("event not processed", "message_id", "m")
	}
	if len(clock.due) != 1 {
		t.Fatalf("%d summaries scheduled after 5 lines left out, want 1", len(clock.due))
	}
	clock.now = t0.Add(logEvery / 2)
	log.Error("event not processed", "message_id", "m") // still coming: a sixth left out
	clock.now = t0.Add(logEvery)
	clock.fire()
	if lines := summaries(&buf); len(lines) != 0 {
		t.Fatalf("summary while lines keep coming: %q", lines)
	}
	clock.now = t0.Add(logEvery * 3 / 2)
	clock.fire()
	lines := summaries(&buf)
	want := `"severity":"ERROR","message":"event not processed","suppressed":6,"summary":true}`
	if len(lines) != 1 || !strings.HasSuffix(lines[0], want) {
		t.Fatalf("summary lines %q, want one ending %s", lines, want)
	}
	if len(clock.due) != 0 {
		t.Errorf("%d summaries still scheduled with nothing left to count", len(clock.due))
	}

	buf.Reset()
	clock.now = t0.Add(time.Hour)
	for range logBurst + 2 {
		log.Warn("bigquery append failed")
	}
	log.Info("metadata loaded")
	flushThinned(log)
	lines = summaries(&buf)
	want = `"severity":"WARNING","message":"bigquery append failed","suppressed":2,"summary":true}`
	if len(lines) != 1 || !strings.HasSuffix(lines[0], want) {
		t.Errorf("at SIGTERM: summary lines %q, want one ending %s", lines, want)
	}
	clock.fire() // the summary scheduled before the flush finds nothing to count
	if lines := summaries(&buf); len(lines) != 1 {
		t.Errorf("a count logged twice: %q", lines)
	}
}

// TestSIGTERMLogsThinnedCounts: the drain on SIGTERM logs the counts of
// lines left out before the process exits. The test runs this test binary
// again, and the child sends itself SIGTERM.
func TestSIGTERMLogsThinnedCounts(t *testing.T) {
	if os.Getenv("ENRICHEVENT_SIGTERM_CHILD") != "" {
		log := newLogger(os.Stdout, slog.LevelInfo)
		drainOnSIGTERM(log)
		for range logBurst + 3 {
			log.Error("event not processed", "message_id", "m")
		}
		if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute) // the drain exits
		t.Fatal("no exit on SIGTERM")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSIGTERMLogsThinnedCounts$")
	cmd.Env = append(os.Environ(), "ENRICHEVENT_SIGTERM_CHILD=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v, output %q", err, out)
	}
	var buf bytes.Buffer
	buf.Write(out)
	want := `"message":"event not processed","suppressed":3,"summary":true}`
	if lines := summaries(&buf); len(lines) != 1 || !strings.HasSuffix(lines[0], want) || !strings.Contains(string(out), "stopping on SIGTERM") {
		t.Errorf("output on SIGTERM %q; want one summary ending %s, then stopping on SIGTERM", out, want)
	}
}

func summaries(buf *bytes.Buffer) (lines []string) {
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if strings.Contains(l, `"summary":true`) {
			lines = append(lines, l)
		}
	}
	return lines
}

// logClock stands for a thinned logger's clock and timers, so that a test
// sets the time and runs the scheduled summaries itself.
type logClock struct {
	now time.Time
	due []func()
}

func fakeLogClock(log *slog.Logger) *logClock {
	c := &logClock{now: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}
	lines := log.Handler().(*thinHandler).lines
	lines.now = func() time.Time { return c.now }
	lines.after = func(_ time.Duration, f func()) { c.due = append(c.due, f) }
	return c
}

// fire runs the summaries scheduled so far.
func (c *logClock) fire() {
	due := c.due
	c.due = nil
	for _, f := range due {
		f()
	}
}
