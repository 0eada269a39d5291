package cache_test

import (
	"context"
	"errors"
	"io/fs"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/devicestream/enrichevent/cache"
)

// 1. The first Get loads; later Gets reuse the snapshot.
func TestFirstGetLoads(t *testing.T) {
	f := newFixture(t, lines(3), nil)
	s := f.get()
	if want := []string{"d0", "d1", "d2"}; !slices.Equal(s.Value, want) {
		t.Fatalf("Get().Value = %q, want %q", s.Value, want)
	}
	if !s.LoadedAt.Equal(t0) || !s.CheckedAt.Equal(t0) {
		t.Errorf("LoadedAt, CheckedAt = %v, %v, want both %v", s.LoadedAt, s.CheckedAt, t0)
	}
	if again := f.get(); again != s {
		t.Errorf("second Get = %p, want the first snapshot %p", again, s)
	}
	f.wantCalls(1, 1)
}

// 1. Concurrent first Gets share one load; one caller giving up does not
// fail the others.
func TestFirstLoadSharedByConcurrentCallers(t *testing.T) {
	f := newFixture(t, lines(3), nil)
	release := f.src.closeGate()
	const callers = 8
	got := make([]*cache.Snapshot[[]string], callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			var err error
			if got[i], err = f.c.Get(context.Background()); err != nil {
				t.Errorf("Get: %v", err)
			}
		})
	}
	<-f.src.entered
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() {
		_, err := f.c.Get(ctx)
		errc <- err
	}()
	waitRunning(f.c, callers+1) // every caller is waiting on the load
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Get(cancelled ctx) error = %v, want context.Canceled", err)
	}
	release()
	wg.Wait()
	for i, s := range got {
		if s != got[0] {
			t.Errorf("caller %d got snapshot %p, caller 0 got %p", i, s, got[0])
		}
	}
	f.wantCalls(1, 1)
}

// 1. A caller whose context ends stops waiting; the shared load goes on,
// under its own context, and Wait waits for it.
func TestFirstLoadHonoursCallerContext(t *testing.T) {
	f := newFixture(t, lines(3), nil)
	release := f.src.closeGate()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() {
		_, err := f.c.Get(ctx)
		errc <- err
	}()
	<-f.src.entered // the load runs with this caller's context values
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Get(cancelled ctx) error = %v, want context.Canceled", err)
	}
	release()
	f.c.Wait()
	if st := f.c.Stats(); st.Loads != 1 || st.Failures != 0 {
		t.Errorf("Stats() after Wait: Loads, Failures = %d, %d, want 1, 0", st.Loads, st.Failures)
	}
	if s := f.get(); len(s.Value) != 3 {
		t.Errorf("Get().Value = %q, want 3 lines", s.Value)
	}
	f.wantCalls(1, 1)
}

// 1. A failed first load returns its error; later Gets reuse it for a
// second, then try again.
func TestFirstLoadFailure(t *testing.T) {
	f := newFixture(t, "", nil)
	for _, step := range []struct {
		advance time.Duration
		stats   int64
	}{
		{0, 1},
		{time.Second - 1, 1}, // failure reused
		{1, 2},               // tried again
	} {
		f.clock.Advance(step.advance)
		_, err := f.c.Get(context.Background())
		if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, cache.ErrStale) {
			t.Fatalf("Get() error = %v, want fs.ErrNotExist and not ErrStale", err)
		}
		f.wantCalls(step.stats, 0)
	}
	if n := len(f.logs.records(t, "metadata load failed")); n != 2 {
		t.Errorf("%d \"metadata load failed\" log lines, want 2", n)
	}
	f.write(lines(2))
	f.clock.Advance(time.Second)
	if s := f.get(); len(s.Value) != 2 {
		t.Errorf("Get().Value = %q after the file appeared, want 2 lines", s.Value)
	}
	if st := f.c.Stats(); st.LastError != "" || st.Failures != 2 {
		t.Errorf("Stats() LastError, Failures = %q, %d, want \"\", 2", st.LastError, st.Failures)
	}
}

// 2. Once warm, Get returns at once while one background refresh runs.
func TestGetNeverWaitsOnceWarm(t *testing.T) {
	f := newFixture(t, lines(3), nil)
	first := f.get()
	f.clock.Advance(time.Hour)
	release := f.src.closeGate()
	if s := f.get(); s != first {
		t.Fatalf("Get() after TTL = %p, want the current snapshot %p", s, first)
	}
	<-f.src.entered // the refresh is blocked in Stat
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if s, err := f.c.Get(context.Background()); s != first || err != nil {
				t.Errorf("Get() during refresh = %p, %v, want %p, nil", s, err, first)
			}
		})
	}
	wg.Wait()
	f.wantCalls(2, 1)
	release()
	f.c.Wait()
	s := f.get()
	if s == first || !s.CheckedAt.Equal(f.clock.Now()) {
		t.Errorf("Get() after refresh: CheckedAt = %v, want a new snapshot checked at %v", s.CheckedAt, f.clock.Now())
	}
}

// 2. Concurrent expiries start exactly one refresh.
func TestConcurrentExpiriesStartOneRefresh(t *testing.T) {
	f := newFixture(t, lines(3), nil)
	f.get()
	f.clock.Advance(time.Hour)
	f.write(lines(4))
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := f.c.Get(context.Background()); err != nil {
				t.Errorf("Get: %v", err)
			}
		})
	}
	wg.Wait()
	f.c.Wait()
	f.wantCalls(2, 2)
	if s := f.get(); len(s.Value) != 4 {
		t.Errorf("Get().Value = %q, want the 4 new lines", s.Value)
	}
}

// 3. An unchanged version is a metadata-only check: no download.
func TestUnchangedVersionIsMetadataOnlyCheck(t *testing.T) {
	f := newFixture(t, lines(3), nil)
	first := f.get()
	f.clock.Advance(time.Hour)
	f.settle()
	s := f.get()
	f.wantCalls(2, 1)
	if &s.Value[0] != &first.Value[0] || !s.LoadedAt.Equal(first.LoadedAt) {
		t.Errorf("after check: Value, LoadedAt changed, want the first load's")
	}
	if want := t0.Add(time.Hour); !s.CheckedAt.Equal(want) {
		t.Errorf("after check: CheckedAt = %v, want %v", s.CheckedAt, want)
	}
	if st := f.c.Stats(); st.Checks != 1 || st.Downloads != 1 || st.Loads != 1 {
		t.Errorf("Stats() Checks, Downloads, Loads = %d, %d, %d, want 1, 1, 1", st.Checks, st.Downloads, st.Loads)
	}
}

// 3. A new version (size or mtime) is downloaded after the TTL.
func TestChangedVersionIsDownloaded(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content string
		mtime   time.Duration // after t0
		want    []string
	}{
		{"new size", lines(4), 0, []string{"d0", "d1", "d2", "d3"}},
		{"new mtime", "x0\nx1\nx2\n", time.Minute, []string{"x0", "x1", "x2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, lines(3), nil)
			f.get()
			f.fs.set(fileName, tc.content, t0.Add(tc.mtime))
			f.clock.Advance(time.Hour - 1)
			if s := f.settle(); len(s.Value) != 3 {
				t.Fatalf("Get() before TTL = %q, want the old value", s.Value)
			}
			f.clock.Advance(1)
			f.settle()
			if s := f.get(); !slices.Equal(s.Value, tc.want) {
				t.Errorf("Get().Value = %q, want %q", s.Value, tc.want)
			}
			f.wantCalls(2, 2)
		})
	}
}

// 3. A version replaced between Stat and Open is looked up again, once.
func TestVersionGoneRetriesOnce(t *testing.T) {
	for _, tc := range []struct {
		name         string
		replacements int // Opens that find the file replaced
		wantLines    int
		wantFailures int64
	}{
		{"replaced once", 1, 5, 0},
		{"replaced twice", 2, 3, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, lines(3), nil)
			f.get()
			f.write(lines(4))
			n := 0
			hook := func() {
				if n++; n <= tc.replacements {
					f.write(lines(4 + n))
				}
			}
			f.src.beforeOpen.Store(&hook)
			f.clock.Advance(time.Hour)
			f.settle()
			if s := f.get(); len(s.Value) != tc.wantLines {
				t.Errorf("Get().Value = %q, want %d lines", s.Value, tc.wantLines)
			}
			f.wantCalls(3, 3)
			if st := f.c.Stats(); st.Failures != tc.wantFailures {
				t.Errorf("Stats().Failures = %d, want %d (LastError %q)", st.Failures, tc.wantFailures, st.LastError)
			}
		})
	}
}
