package enrichevent

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

// TestLogLimitBucket: a burst of logBurst lines, then one per logEvery; the
// first line after a gap counts the lines left out; a clock that goes back
// refills nothing.
func TestLogLimitBucket(t *testing.T) {
	var l logLimit
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	step := func(at time.Time, wantOK bool, wantSuppressed int64) {
		t.Helper()
		ok, attr := l.allow(at)
		var got int64
		if attr.Key != "" {
			if attr.Key != "suppressed" {
				t.Fatalf("attribute %v, want suppressed", attr)
			}
			got = attr.Value.Int64()
		}
		if ok != wantOK || got != wantSuppressed {
			t.Fatalf("allow(t0+%v) = %v, suppressed %d; want %v, %d", at.Sub(t0), ok, got, wantOK, wantSuppressed)
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

// TestRepeatedLogLinesThinned: the lines an outage or a flood of bad input
// repeats for every delivery (a refused request, an event to be redelivered,
// a poison message) are logged for the first logBurst deliveries, then once
// per logEvery with the count of those left out; every delivery is still
// answered and recorded as before.
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
			now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
			h.f.now = func() time.Time { return now }
			for i := range n + 1 {
				if i == n {
					now = now.Add(logEvery)
				}
				if resp := h.serve(sampleRequest(t, tc.request)); resp.Code != tc.status {
					t.Fatalf("delivery %d = %d %q, want %d", i, resp.Code, resp.Body, tc.status)
				}
			}
			var suppressed []any
			sc := bufio.NewScanner(bytes.NewReader(h.logs.Bytes()))
			for sc.Scan() {
				var line map[string]any
				if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
					t.Fatalf("log line %q: %v", sc.Text(), err)
				}
				if line["message"] == tc.msg {
					suppressed = append(suppressed, line["suppressed"])
				}
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
