package cache_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/devicestream/enrichevent/cache"
)

// 4. A failed refresh keeps the last good value and logs why, and how old
// the value is.
func TestFailedRefreshKeepsLastGood(t *testing.T) {
	for _, tc := range []struct {
		name      string
		breakIt   func(f *fixture)
		wantMsg   string
		wantLevel string
		wantErr   string
	}{
		{"source down", func(f *fixture) { f.fs.remove(fileName) }, "metadata refresh failed", "WARN", "file does not exist"},
		{"parse error", func(f *fixture) { f.write("d0\nd1\nd2\nd3") }, "metadata rejected", "ERROR", "partial last line"},
		{"parser panic", func(f *fixture) { f.write("panic\n") }, "metadata rejected", "ERROR", "parser panic: parser bug"},
		{"rejected", func(f *fixture) { f.write("") }, "metadata rejected", "ERROR", "no entries"},
		{"download cut", func(f *fixture) {
			f.write(lines(4))
			err := errors.New("connection reset")
			f.src.readErr.Store(&err)
		}, "metadata refresh failed", "WARN", "connection reset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, lines(3), nil)
			first := f.get()
			tc.breakIt(f)
			f.clock.Advance(time.Hour)
			if s := f.settle(); s != first {
				t.Errorf("Get() after TTL = %p, want the last good snapshot %p", s, first)
			}
			if s := f.get(); s != first {
				t.Errorf("Get() after failed refresh = %p, want the last good snapshot %p", s, first)
			}
			st := f.c.Stats()
			if st.Failures != 1 || !strings.Contains(st.LastError, tc.wantErr) {
				t.Errorf("Stats() Failures, LastError = %d, %q, want 1, containing %q", st.Failures, st.LastError, tc.wantErr)
			}
			recs := f.logs.records(t, tc.wantMsg)
			if len(recs) != 1 {
				t.Fatalf("%d %q log lines, want 1", len(recs), tc.wantMsg)
			}
			rec := recs[0]
			if rec["level"] != tc.wantLevel || rec["age"] != "1h0m0s" || !strings.Contains(rec["error"].(string), tc.wantErr) {
				t.Errorf("log line = %v, want level %s, age 1h0m0s, error containing %q", rec, tc.wantLevel, tc.wantErr)
			}
		})
	}
}

// 4. After a failure, attempts back off: Backoff, doubling, capped at TTL.
func TestFailedRefreshBacksOff(t *testing.T) {
	f := newFixture(t, lines(3), func(c *cache.Config[[]string]) { c.TTL = 2 * time.Minute })
	f.get()
	f.fs.remove(fileName)
	f.clock.Advance(2 * time.Minute)
	f.settle() // first failure
	stats := int64(2)
	for _, wait := range []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 2 * time.Minute} {
		f.clock.Advance(wait - 1)
		f.settle()
		f.settle()
		f.wantCalls(stats, 1)
		f.clock.Advance(1)
		f.settle()
		stats++
		f.wantCalls(stats, 1)
	}
	f.write(lines(3))
	f.clock.Advance(2 * time.Minute)
	f.settle()
	if st := f.c.Stats(); st.Failures != 5 || st.LastError != "" || st.Loads != 2 {
		t.Errorf("Stats() Failures, LastError, Loads = %d, %q, %d, want 5, \"\", 2", st.Failures, st.LastError, st.Loads)
	}
	// A success resets the backoff: the next failure waits Backoff again.
	f.fs.remove(fileName)
	f.clock.Advance(2 * time.Minute)
	f.settle()
	f.clock.Advance(30 * time.Second)
	f.settle()
	f.wantCalls(stats+3, 2)
}

// 5. A new version with no entries, or shrunk by more than MaxShrink, is
// rejected and the old value stays.
func TestGuard(t *testing.T) {
	for _, tc := range []struct {
		name      string
		maxShrink float64
		noSize    bool
		newLines  int
		rejected  bool
	}{
		{"empty", 0, false, 0, true},
		{"shrunk past max", 0, false, 4, true},
		{"shrunk to max", 0, false, 5, false},
		{"grown", 0, false, 20, false},
		{"shrunk within a wider max", 0.9, false, 1, false},
		{"empty with a wider max", 0.9, false, 0, true},
		{"any shrink allowed", 1, false, 1, false},
		{"no Size, no guard", 0, true, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, lines(10), func(c *cache.Config[[]string]) {
				c.MaxShrink = tc.maxShrink
				if tc.noSize {
					c.Size = nil
				}
			})
			f.get()
			f.write(lines(tc.newLines))
			f.clock.Advance(time.Hour)
			f.settle()
			want, wantRejections := tc.newLines, int64(0)
			if tc.rejected {
				want, wantRejections = 10, 1
			}
			if s := f.get(); len(s.Value) != want {
				t.Errorf("Get().Value has %d lines, want %d", len(s.Value), want)
			}
			st := f.c.Stats()
			if st.Rejections != wantRejections || st.Failures != wantRejections {
				t.Errorf("Stats() Rejections, Failures = %d, %d, want %d, %d", st.Rejections, st.Failures, wantRejections, wantRejections)
			}
			if tc.rejected && !strings.Contains(st.LastError, cache.ErrRejected.Error()) {
				t.Errorf("Stats().LastError = %q, want it to wrap ErrRejected", st.LastError)
			}
			if n := len(f.logs.records(t, "metadata rejected")); n != int(wantRejections) {
				t.Errorf("%d \"metadata rejected\" log lines, want %d", n, wantRejections)
			}
		})
	}
}

// 5. The guard applies to the first load too: an empty file is an error.
func TestGuardRejectsEmptyFirstLoad(t *testing.T) {
	f := newFixture(t, "", nil)
	f.write("")
	if _, err := f.c.Get(context.Background()); !errors.Is(err, cache.ErrRejected) {
		t.Errorf("Get() error = %v, want ErrRejected", err)
	}
}

// 6. Past MaxStaleness without a good check, Get fails with ErrStale, and
// still tries the source (with backoff) until it answers: that Get then
// gets the renewed value.
func TestMaxStaleness(t *testing.T) {
	f := newFixture(t, lines(3), nil)
	f.get()
	f.fs.remove(fileName)
	f.clock.Advance(24 * time.Hour)
	f.settle() // exactly MaxStaleness: still served; the refresh fails
	f.wantCalls(2, 1)

	for _, step := range []struct {
		advance time.Duration
		restore bool // put the file back first
		stats   int64
	}{
		{1, false, 2},                // stale, backing off: no attempt
		{30 * time.Second, false, 3}, // stale, attempt
		{time.Minute - 1, false, 3},  // stale, backing off
		{1, false, 4},                // stale, attempt
	} {
		f.clock.Advance(step.advance)
		s, err := f.c.Get(context.Background())
		f.c.Wait()
		if !errors.Is(err, cache.ErrStale) || s != nil {
			t.Fatalf("Get() = %v, %v, want nil, ErrStale", s, err)
		}
		if !strings.Contains(err.Error(), "file does not exist") {
			t.Errorf("Get() error = %q, want it to carry the last refresh error", err)
		}
		f.wantCalls(step.stats, 1)
	}
	f.write(lines(3)) // the source is back
	f.clock.Advance(2 * time.Minute)
	if s := f.get(); len(s.Value) != 3 || !s.CheckedAt.Equal(f.clock.Now()) {
		t.Errorf("Get() = %q checked at %v once the source is back, want 3 lines checked now", s.Value, s.CheckedAt)
	}
	f.wantCalls(5, 2)
}

// 6. An instance idle for longer than MaxStaleness (a minimum instance at
// night) renews its value before it answers: its first request does not
// fail while the source is fine.
func TestStaleValueRenewedBeforeAnswer(t *testing.T) {
	f := newFixture(t, lines(3), nil)
	first := f.get()
	f.clock.Advance(25 * time.Hour)
	s := f.get()
	if s.Version != first.Version || !s.CheckedAt.Equal(f.clock.Now()) {
		t.Errorf("Get() after 25h idle = version %v checked at %v, want %v checked now", s.Version, s.CheckedAt, first.Version)
	}
	f.wantCalls(2, 1) // a version check, no download
	if n := cache.Running(f.c); n != 0 {
		t.Errorf("%d refreshes running after Get returned, want 0", n)
	}
}

// 6. Requests that find the value stale at once share one renewal, and a
// renewal that fails leaves them all with ErrStale and the source backing
// off.
func TestStaleRenewalShared(t *testing.T) {
	f := newFixture(t, lines(3), nil)
	f.get()
	f.clock.Advance(25 * time.Hour)
	f.fs.remove(fileName)
	release := f.src.closeGate()
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { _, errs[i] = f.c.Get(context.Background()) })
	}
	<-f.src.entered
	waitRunning(f.c, len(errs))
	release()
	wg.Wait()
	for _, err := range errs {
		if !errors.Is(err, cache.ErrStale) || !strings.Contains(err.Error(), "file does not exist") {
			t.Errorf("Get() error = %v, want ErrStale with the refresh's error", err)
		}
	}
	f.wantCalls(2, 1)
	if _, err := f.c.Get(context.Background()); !errors.Is(err, cache.ErrStale) {
		t.Errorf("Get() while backing off = %v, want ErrStale", err)
	}
	f.wantCalls(2, 1) // no new attempt
}

// 2. A Get or Miss that saw the old snapshot but reaches startRefresh only
// after another refresh replaced it starts nothing; nor does one that
// reaches it during a backoff.
func TestLateRefreshStartsNothing(t *testing.T) {
	f := newFixture(t, lines(3), nil)
	f.get()
	f.clock.Advance(time.Hour)
	f.settle()
	if cache.StartRefresh(f.c, time.Hour) {
		t.Errorf("StartRefresh(TTL) just after a refresh = true, want false")
	}
	f.c.Wait()
	f.wantCalls(2, 1)

	f.fs.remove(fileName)
	f.clock.Advance(time.Hour)
	f.settle() // fails: backoff 30s
	f.clock.Advance(30*time.Second - 1)
	if cache.StartRefresh(f.c, time.Hour) {
		t.Errorf("StartRefresh(TTL) during backoff = true, want false")
	}
	f.c.Wait()
	f.wantCalls(3, 1)
}

// TestTTLLeavesRoomBeforeMaxStaleness: the TTL is at most half of
// MaxStaleness, so that a value past its TTL is refreshed in the
// background, and a source failing then costs no request, even when the
// two are configured equal (each Get past a TTL equal to MaxStaleness
// waited for the source, and failed on any blip).
func TestTTLLeavesRoomBeforeMaxStaleness(t *testing.T) {
	for _, ttl := range []time.Duration{time.Hour, 2 * time.Hour} {
		f := newFixture(t, lines(3), func(c *cache.Config[[]string]) {
			c.TTL, c.MaxStaleness = ttl, time.Hour
		})
		f.get()
		f.fs.remove(fileName) // a passing failure
		f.clock.Advance(30*time.Minute + time.Second)
		release := f.src.closeGate()
		s, err := returnsWithin(t, "Get past the TTL", func() (*cache.Snapshot[[]string], error) { return f.c.Get(context.Background()) })
		select { // the refresh runs, in the background
		case <-f.src.entered:
		case <-time.After(time.Minute):
			t.Fatalf("TTL %v, MaxStaleness 1h: no refresh 30m1s after the load", ttl)
		}
		release()
		f.c.Wait()
		if err != nil || len(s.Value) != 3 {
			t.Errorf("TTL %v, MaxStaleness 1h: Get() 30m1s after the load, the source down = %v, %v; want the 3 lines at once", ttl, s, err)
		}
		if n := len(f.logs.records(t, "metadata refresh failed")); n != 1 {
			t.Errorf("TTL %v: %d \"metadata refresh failed\" lines, want 1 (a background refresh)", ttl, n)
		}
	}
}

// TestRenewAfterAFailedRenewalWaitsForTheBackoff: a Get that checked the
// backoff before a shared renewal of a stale value failed, and joins the
// single flight only after it ended, does not try the source again inside
// the backoff: each such try doubled the backoff, and one burst of
// requests left an instance refusing them for up to the TTL after the
// source came back.
func TestRenewAfterAFailedRenewalWaitsForTheBackoff(t *testing.T) {
	f := newFixture(t, lines(3), nil)
	f.get()
	f.fs.remove(fileName)
	f.clock.Advance(25 * time.Hour)
	release := f.src.closeGate()
	first := make(chan error, 1)
	go func() { _, err := f.c.Get(context.Background()); first <- err }()
	<-f.src.entered // the renewal is in Stat
	unlock := cache.HoldRunning(f.c)
	second := make(chan error, 1)
	go func() { _, err := f.c.Get(context.Background()); second <- err }() // past the backoff check, waiting in begin
	time.Sleep(200 * time.Millisecond)
	release() // the renewal fails: a backoff of 30s
	for f.c.Stats().Failures < 1 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // the flight is over
	unlock()
	for _, ch := range []chan error{first, second} {
		if err := <-ch; !errors.Is(err, cache.ErrStale) {
			t.Errorf("Get() = %v, want ErrStale", err)
		}
	}
	f.c.Wait()
	if n := f.src.stats.Load() - 1; n != 1 {
		t.Errorf("%d renewals with the clock stopped, want 1: another started inside the backoff", n)
	}
	f.write(lines(3)) // the source is back
	f.clock.Advance(30*time.Second + 1)
	if _, err := f.c.Get(context.Background()); err != nil {
		t.Errorf("Get() once the backoff of one failure is over, the source back = %v", err)
	}
}

// TestBurstsTryTheSourceOnce: a burst of requests on a stale value, or at a
// cold start, with the source down, tries the source once.
func TestBurstsTryTheSourceOnce(t *testing.T) {
	for _, cold := range []bool{false, true} {
		for range 5 {
			content := lines(3)
			if cold {
				content = ""
			}
			f := newFixture(t, content, nil)
			if !cold {
				f.get()
				f.fs.remove(fileName)
				f.clock.Advance(25 * time.Hour)
			}
			start := make(chan struct{})
			var wg sync.WaitGroup
			for range 200 {
				wg.Go(func() {
					<-start
					if _, err := f.c.Get(context.Background()); err == nil {
						t.Error("Get() = nil error, want the source's failure")
					}
				})
			}
			close(start)
			wg.Wait()
			f.c.Wait()
			tries := f.src.stats.Load()
			if !cold {
				tries-- // the first load
			}
			if tries != 1 {
				t.Errorf("cold %v: %d tries of the source in one burst with the clock stopped, want 1", cold, tries)
			}
		}
	}
}

// 7. Miss starts at most one early version check per MissInterval.
func TestMissStartsEarlyCheck(t *testing.T) {
	f := newFixture(t, lines(3), nil)
	f.get()
	miss := func(advance time.Duration, wantStats, wantOpens int64) {
		t.Helper()
		f.clock.Advance(advance)
		f.c.Miss()
		f.c.Wait()
		f.wantCalls(wantStats, wantOpens)
	}
	miss(0, 1, 1)             // just loaded
	miss(time.Minute-1, 1, 1) // checked less than a minute ago
	miss(1, 2, 1)             // check: unchanged
	miss(0, 2, 1)             // just checked
	f.write(lines(4))
	miss(time.Minute, 3, 2) // check: changed, downloaded
	if s := f.get(); len(s.Value) != 4 {
		t.Errorf("Get().Value = %q after Miss, want the 4 new lines", s.Value)
	}
	f.fs.remove(fileName)      // failing checks leave CheckedAt behind:
	miss(time.Minute, 4, 2)    // check: fails
	miss(30*time.Second, 4, 2) // backoff over, but Miss checked 30s ago
	miss(30*time.Second, 5, 2) // check: fails
}

// 7. Concurrent Misses start one check, and none while a refresh runs.
func TestMissNeverStartsASecondRefresh(t *testing.T) {
	f := newFixture(t, lines(3), nil)
	f.get()
	f.clock.Advance(time.Minute)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(f.c.Miss)
	}
	wg.Wait()
	f.c.Wait()
	f.wantCalls(2, 1)

	f.clock.Advance(time.Hour)
	release := f.src.closeGate()
	f.get() // starts a refresh, blocked in Stat
	<-f.src.entered
	f.clock.Advance(time.Minute)
	f.c.Miss()
	release()
	f.c.Wait()
	f.wantCalls(3, 1)
}

// 9. A background refresh is paced: its parse takes at most RefreshShare
// of the refresh's time, sleeping between reads, and the "metadata loaded"
// line says how long it paused. The first load is never paced (requests
// wait for it), and a RefreshShare of 1 turns pacing off.
func TestBackgroundRefreshIsPaced(t *testing.T) {
	for _, tc := range []struct {
		name  string
		share float64
		ratio time.Duration // sleep per unit of work
	}{
		{"default share", 0, 9},
		{"pacing off", 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The pacing clock moves only when the parser works (1 ms per
			// read) or the pacer sleeps.
			var mu sync.Mutex
			var paceNow time.Time
			var slept time.Duration
			reads := 0
			advance := func(d time.Duration) { mu.Lock(); paceNow = paceNow.Add(d); mu.Unlock() }
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return paceNow }
			sleep := func(d time.Duration) { advance(d); mu.Lock(); slept += d; mu.Unlock() }
			parse := func(r io.Reader, v cache.Version) ([]string, error) {
				reads = 0
				return parseLines(workingReader{r, func(d time.Duration) { reads++; advance(d) }}, v)
			}
			content := lines(20000) // 128,890 bytes
			f := newFixture(t, content, func(c *cache.Config[[]string]) {
				c.Parse, c.RefreshShare = parse, tc.share
			})
			cache.SetPacing(f.c, clock, sleep)

			f.get()
			if slept != 0 {
				t.Errorf("first load slept %v, want no pacing", slept)
			}
			f.write(content + "d20000\n")
			f.clock.Advance(time.Hour)
			if s := f.settle(); len(s.Value) != 20000 {
				t.Fatalf("Get() during the refresh = %d lines, want the old 20000", len(s.Value))
			}
			if s := f.get(); len(s.Value) != 20001 {
				t.Fatalf("Get() after the refresh = %d lines, want 20001", len(s.Value))
			}
			// Every read but the first pays for the work since the last.
			want := tc.ratio * time.Duration(reads-1) * time.Millisecond
			if slept != want {
				t.Errorf("refresh slept %v over %d reads, want %v", slept, reads, want)
			}
			loaded := f.logs.records(t, "metadata loaded")
			paused, ok := loaded[len(loaded)-1]["paused_ms"]
			if want > 0 && paused != float64(want.Milliseconds()) || want == 0 && ok {
				t.Errorf("refresh log line paused_ms = %v, want %v", paused, want.Milliseconds())
			}
		})
	}
}

// workingReader advances a clock by 1 ms after every read, as a parser
// working on what it read would.
type workingReader struct {
	r    io.Reader
	work func(time.Duration)
}

func (w workingReader) Read(b []byte) (int, error) {
	n, err := w.r.Read(b)
	w.work(time.Millisecond)
	return n, err
}

// 5. A version that was rejected is not downloaded again while the source
// still holds it, and it does not make the last good value go stale: the
// source answers, and the value is the best it has. The rejection is
// logged at every check, until a new version loads.
func TestRejectedVersionKeptOut(t *testing.T) {
	f := newFixture(t, lines(3), nil)
	first := f.get()
	f.write("d0\nd1") // cut short: does not parse
	f.clock.Advance(time.Hour)
	f.settle()
	f.wantCalls(2, 2)
	for range 30 { // 30 hours, well past MaxStaleness
		f.clock.Advance(time.Hour)
		if s := f.settle(); s.Version != first.Version {
			t.Fatalf("Get() = version %v, want the last good %v", s.Version, first.Version)
		}
	}
	f.wantCalls(2+30, 2) // version checks only
	if n := len(f.logs.records(t, "metadata rejected")); n != 1 {
		t.Errorf("%d \"metadata rejected\" log lines, want 1", n)
	}
	still := f.logs.records(t, "metadata still rejected")
	if len(still) != 30 || still[0]["level"] != "ERROR" || still[29]["rejected_for"] != "30h0m0s" ||
		!strings.Contains(still[0]["error"].(string), "partial last line") {
		t.Errorf("%d \"metadata still rejected\" log lines (first %v, last %v), want 30 at ERROR, the last rejected for 30h",
			len(still), still[0], still[len(still)-1])
	}
	if st := f.c.Stats(); !strings.Contains(st.LastError, "partial last line") {
		t.Errorf("Stats().LastError = %q, want the rejection", st.LastError)
	}
	f.write(lines(4)) // fixed
	f.clock.Advance(time.Hour)
	if s := f.settle(); len(s.Value) != 3 {
		t.Fatalf("Get() = %d lines, want the last good 3 until the refresh", len(s.Value))
	}
	if s := f.get(); len(s.Value) != 4 {
		t.Errorf("Get() = %d lines once fixed, want 4", len(s.Value))
	}
	if st := f.c.Stats(); st.LastError != "" {
		t.Errorf("Stats().LastError = %q after a good load, want none", st.LastError)
	}
}

// 5. A first load that finds a version already rejected fails at once,
// without downloading it again or logging it again; a new version loads.
func TestColdRejectionNotDownloadedAgain(t *testing.T) {
	f := newFixture(t, "d0\nd1", nil)
	for i := range 5 {
		if _, err := f.c.Get(context.Background()); !errors.Is(err, cache.ErrRejected) || !strings.Contains(err.Error(), "partial last line") {
			t.Fatalf("Get() #%d error = %v, want the rejection", i, err)
		}
		f.clock.Advance(time.Second)
	}
	f.wantCalls(5, 1)
	if n := len(f.logs.records(t, "metadata load failed")); n != 1 {
		t.Errorf("%d \"metadata load failed\" log lines, want 1", n)
	}
	f.write(lines(2))
	if s := f.get(); len(s.Value) != 2 {
		t.Errorf("Get() = %d lines once fixed, want 2", len(s.Value))
	}
}

// 5. A version rejected only for shrinking past MaxShrink is accepted once
// it has stayed the source's version for ShrinkWait: a deliberate cut
// needs no other action. One replaced sooner never loads.
func TestShrinkAcceptedOnceItStays(t *testing.T) {
	f := newFixture(t, lines(10), nil)
	f.get()
	f.write(lines(4))
	f.clock.Advance(time.Hour)
	f.settle() // rejected
	f.clock.Advance(30 * time.Second)
	f.settle() // backoff over: a version check only
	if s := f.get(); len(s.Value) != 10 {
		t.Fatalf("Get() = %d lines, want the 10 kept while the shrink waits", len(s.Value))
	}
	f.wantCalls(3, 2)
	if still := f.logs.records(t, "metadata still rejected"); len(still) != 1 || still[0]["accepted_in"] != "59m30s" {
		t.Errorf("\"metadata still rejected\" log lines = %v, want one saying it is accepted in 59m30s", still)
	}
	f.clock.Advance(time.Hour)
	f.settle()
	if s := f.get(); len(s.Value) != 4 {
		t.Errorf("Get() = %d lines an hour after the shrink, want 4", len(s.Value))
	}
	f.wantCalls(4, 3)
	if acc := f.logs.records(t, "metadata shrink accepted"); len(acc) != 1 || acc[0]["level"] != "WARN" ||
		acc[0]["size"] != 4.0 || acc[0]["previous_size"] != 10.0 {
		t.Errorf("\"metadata shrink accepted\" log lines = %v, want one WARN line, size 4, previous 10", acc)
	}

	// A shrink replaced by a good version within the hour never loads.
	f.write(lines(1))
	f.clock.Advance(time.Hour)
	f.settle() // rejected
	f.write(lines(5))
	f.clock.Advance(30 * time.Second)
	f.settle()
	f.clock.Advance(time.Hour)
	f.settle()
	if s := f.get(); len(s.Value) != 5 {
		t.Errorf("Get() = %d lines, want the 5 that replaced the shrink", len(s.Value))
	}
	if n := len(f.logs.records(t, "metadata shrink accepted")); n != 1 {
		t.Errorf("%d \"metadata shrink accepted\" log lines, want still 1", n)
	}
}

// TestShrinkAcceptedLogLines: "metadata shrink accepted" says how long the
// version was held, and the "metadata loaded" line after it names the
// generation it replaced.
func TestShrinkAcceptedLogLines(t *testing.T) {
	f := newFixture(t, lines(10), nil)
	first := f.get()
	f.write(lines(4))
	f.clock.Advance(time.Hour)
	f.settle() // rejected
	f.clock.Advance(2 * time.Hour)
	f.settle() // accepted, 2h after the rejection
	if s := f.get(); len(s.Value) != 4 {
		t.Fatalf("Get() = %d lines, want 4", len(s.Value))
	}
	if acc := f.logs.records(t, "metadata shrink accepted"); len(acc) != 1 || acc[0]["held_for"] != "2h0m0s" {
		t.Errorf("\"metadata shrink accepted\" lines %v, want one with held_for 2h0m0s", acc)
	}
	loaded := f.logs.records(t, "metadata loaded")
	if last := loaded[len(loaded)-1]; last["previous_generation"] != float64(first.Version.Generation) {
		t.Errorf("\"metadata loaded\" after the accepted shrink: previous_generation %v, want %d", last["previous_generation"], first.Version.Generation)
	}
}

// TestShrinkOfANewExportAcceptedOnTime: while a cut is rejected, Get
// checks the source every MissInterval; a new export of the cut keeps the
// wait of the first, and one first seen after that wait is accepted at
// once, without another "metadata rejected" line (which alerts).
func TestShrinkOfANewExportAcceptedOnTime(t *testing.T) {
	for _, export := range []time.Duration{30 * time.Minute, 59 * time.Minute} {
		f := newFixture(t, lines(10), nil)
		f.get()
		f.write(lines(3))
		f.clock.Advance(time.Hour)
		f.settle() // rejected, an hour after the load
		for elapsed := time.Duration(0); elapsed < 65*time.Minute; elapsed += time.Minute {
			if elapsed == export {
				f.write(lines(3) + "x\n") // the cut, exported again
			}
			f.clock.Advance(time.Minute)
			f.settle()
			if n, at := len(f.get().Value), elapsed+time.Minute; at < time.Hour && n != 10 || at >= time.Hour && n != 4 {
				t.Fatalf("export after %v: %d lines %v after the first rejection, want 10 before an hour and the new export's 4 from then",
					export, n, at)
			}
		}
		wantRejected := 2 // the first cut, and its new export while the wait lasts
		if export+time.Minute >= time.Hour {
			wantRejected = 1 // first seen as the wait ends
		}
		if n := len(f.logs.records(t, "metadata rejected")); n != wantRejected {
			t.Errorf("export after %v: %d \"metadata rejected\" lines, want %d", export, n, wantRejected)
		}
		if n := len(f.logs.records(t, "metadata shrink accepted")); n != 1 {
			t.Errorf("export after %v: %d \"metadata shrink accepted\" lines, want 1", export, n)
		}
	}
}

// TestShrinkWaitRestartsAfterAnUnseenGap: a new cut that follows another
// one with no check in between for 2×MissInterval (no requests) waits
// ShrinkWait again: a good file may have come and gone unseen, and the new
// cut may be another mistake.
func TestShrinkWaitRestartsAfterAnUnseenGap(t *testing.T) {
	for _, missInterval := range []time.Duration{time.Minute, 2 * time.Hour} { // the window is two minutes at most
		f := newFixture(t, lines(10), func(c *cache.Config[[]string]) { c.MissInterval = missInterval })
		f.get()
		f.write(lines(3)) // a mistaken cut
		f.clock.Advance(time.Hour)
		f.settle() // rejected
		f.clock.Advance(5 * time.Minute)
		f.write(lines(10)) // the good file again, unseen: no requests
		f.clock.Advance(50 * time.Minute)
		f.write(lines(4)) // another mistaken cut
		cut := f.clock.Now()
		for range 70 {
			f.clock.Advance(time.Minute)
			f.settle()
			if s, since := f.get(), f.clock.Now().Sub(cut); since < 55*time.Minute && len(s.Value) != 10 {
				t.Fatalf("MissInterval %v: Get() = %d lines %v after the second cut was written, want the 10 lines", missInterval, len(s.Value), since)
			}
		}
		// The second cut waits an hour from when it was seen, not from the
		// first cut, and is checked every minute meanwhile.
		acc := f.logs.records(t, "metadata shrink accepted")
		if len(acc) != 1 {
			t.Fatalf("MissInterval %v: \"metadata shrink accepted\" lines %v, want one", missInterval, acc)
		}
		if held, _ := time.ParseDuration(fmt.Sprint(acc[0]["held_for"])); held < time.Hour || held > 62*time.Minute {
			t.Errorf("MissInterval %v: \"metadata shrink accepted\" lines %v, want one held for about an hour", missInterval, acc)
		}
	}
}

// TestRejectedVersionCheckedEveryMinute: while the source's version is
// rejected, a fixed file is found within a minute, not a TTL (or within
// the TTL, if that is shorter), whatever MissInterval is.
func TestRejectedVersionCheckedEveryMinute(t *testing.T) {
	for _, ttl := range []time.Duration{time.Hour, 30 * time.Second} {
		f := newFixture(t, lines(10), func(c *cache.Config[[]string]) { c.TTL, c.MissInterval = ttl, 2*time.Hour })
		f.get()
		f.write("corrupt") // no newline: a parse error
		f.clock.Advance(ttl)
		f.settle() // rejected
		f.clock.Advance(31 * time.Second)
		f.settle() // backoff over: still rejected
		f.write(lines(12))
		f.clock.Advance(min(ttl, time.Minute))
		f.settle()
		if s := f.get(); len(s.Value) != 12 {
			t.Errorf("TTL %v: Get() = %d lines %v after the rejected file was fixed, want the fix's 12", ttl, len(s.Value), min(ttl, time.Minute))
		}
	}
}

// TestShrinkWaitCountedWhenTheSourceAnswers: the gap between two
// exports of a cut is measured to when a check saw the new one, not to the
// end of its download: a download of a minute restarted the wait at every
// export, and the cut was never accepted.
func TestShrinkWaitCountedWhenTheSourceAnswers(t *testing.T) {
	f := newFixture(t, lines(10), nil)
	f.get()
	download := func() { f.clock.Advance(61 * time.Second) }
	f.src.beforeOpen.Store(&download)
	start := f.clock.Now()
	for i := 0; f.clock.Now().Sub(start) < 3*time.Hour; i++ {
		f.write(lines(3) + strings.Repeat("x\n", i%2)) // the cut, exported every 30 minutes
		for next := f.clock.Now().Add(30 * time.Minute); f.clock.Now().Before(next); {
			f.clock.Advance(5 * time.Second) // a request every 5 s
			f.settle()
		}
	}
	if n := len(f.logs.records(t, "metadata shrink accepted")); n != 1 {
		t.Errorf("%d \"metadata shrink accepted\" lines after 3 hours of half-hourly exports of a cut downloaded in 61 s, want 1", n)
	}
}

// TestRepeatedShrinkAccepted: a cut exported again more often than
// ShrinkWait (each export a new version of the same smaller table) is
// accepted ShrinkWait after the first: each new version restarted the
// wait, and a warm instance kept the table from before the cut for ever.
func TestRepeatedShrinkAccepted(t *testing.T) {
	f := newFixture(t, lines(10), nil)
	f.get()
	for i := range 6 { // three hours of half-hourly exports of the cut table
		f.write(lines(3) + strings.Repeat("x\n", i%2)) // each export a new version
		for range 30 {                                 // a request a minute
			f.clock.Advance(time.Minute)
			f.c.Miss()
			f.settle()
		}
	}
	if s := f.get(); len(s.Value) < 3 || len(s.Value) > 4 {
		t.Errorf("Get() = %d lines after three hours of exports of a cut to 3 (ShrinkWait 1h), want the cut", len(s.Value))
	}
	acc := f.logs.records(t, "metadata shrink accepted")
	if len(acc) != 1 {
		t.Fatalf("\"metadata shrink accepted\" lines %v, want 1", acc)
	}
	if held, _ := time.ParseDuration(acc[0]["held_for"].(string)); held < time.Hour || held > 90*time.Minute {
		t.Errorf("accepted after %v held, want about an hour after the first cut", held)
	}
}

// 4. A download that fails is a failed refresh even when the parser,
// which may have lost the read error (bufio.Reader.Peek drops it), made
// something of the bytes that arrived: they are not the whole version.
func TestReadErrorFailsParsedDownload(t *testing.T) {
	lenient := func(r io.Reader, _ cache.Version) ([]string, error) {
		b, _ := io.ReadAll(r) // drops the error, as a Peek would
		return []string{string(b)}, nil
	}
	f := newFixture(t, lines(3), func(c *cache.Config[[]string]) { c.Parse = lenient })
	first := f.get()
	f.write(lines(4))
	err := errors.New("connection reset")
	f.src.readErr.Store(&err)
	f.clock.Advance(time.Hour)
	if s := f.settle(); s != first {
		t.Fatalf("Get() = %p, want the last good snapshot %p", s, first)
	}
	if s := f.get(); s.Version != first.Version {
		t.Errorf("Get() after a failed download = version %v, want %v", s.Version, first.Version)
	}
	st := f.c.Stats()
	if st.Failures != 1 || st.Rejections != 0 || !strings.Contains(st.LastError, "connection reset") {
		t.Errorf("Stats() Failures, Rejections, LastError = %d, %d, %q, want 1, 0, the read error", st.Failures, st.Rejections, st.LastError)
	}
	if n := len(f.logs.records(t, "metadata refresh failed")); n != 1 {
		t.Errorf("%d \"metadata refresh failed\" log lines, want 1", n)
	}
}

// 6. A stale value renewed while requests wait is not paced: pacing leaves
// the CPU to requests, and these requests are waiting for it.
func TestStaleRenewalNotPaced(t *testing.T) {
	// The pacing clock moves only when the parser works (1 ms per read).
	var paceNow atomic.Int64
	var slept atomic.Int64
	parse := func(r io.Reader, v cache.Version) ([]string, error) {
		return parseLines(workingReader{r, func(d time.Duration) { paceNow.Add(int64(d)) }}, v)
	}
	f := newFixture(t, lines(20000), func(c *cache.Config[[]string]) { c.Parse = parse })
	cache.SetPacing(f.c, func() time.Time { return time.Unix(0, paceNow.Load()) },
		func(d time.Duration) { paceNow.Add(int64(d)); slept.Add(int64(d)) })
	f.get()
	f.write(lines(20001))
	f.clock.Advance(25 * time.Hour)
	if s := f.get(); len(s.Value) != 20001 {
		t.Fatalf("Get() after 25h idle = %d lines, want the new 20001", len(s.Value))
	}
	if d := time.Duration(slept.Load()); d != 0 {
		t.Errorf("the renewal slept %v, want no pacing", d)
	}
}

// 5. Lookups that miss while a rejected version is held start a version
// check every MissInterval; the rejection is logged at ERROR at most once
// per TTL, not at each of them.
func TestStillRejectedLoggedOncePerTTL(t *testing.T) {
	f := newFixture(t, lines(3), nil)
	f.get()
	f.write("d0\nd1") // cut short: rejected
	f.clock.Advance(time.Hour)
	f.settle()
	for range 120 { // two hours of misses, one a minute
		f.clock.Advance(time.Minute)
		f.c.Miss()
		f.c.Wait()
	}
	errorLines := 0
	for _, rec := range f.logs.records(t, "metadata still rejected") {
		if rec["level"] == "ERROR" {
			errorLines++
		}
	}
	if errorLines != 2 {
		t.Errorf("%d ERROR \"metadata still rejected\" lines in two hours of misses, want 2 (one per TTL)", errorLines)
	}
	if n := f.src.opens.Load(); n != 2 {
		t.Errorf("Source.Open called %d times, want 2: the rejected version is not downloaded again", n)
	}
}
