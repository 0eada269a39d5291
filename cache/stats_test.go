package cache_test

import (
	"context"
	"log/slog"
	"testing"
	"testing/fstest"
	"time"

	"github.com/devicestream/enrichevent/cache"
)

// 8. Stats reports counters, version and age; a load logs one INFO line, an
// unchanged check one DEBUG line.
func TestStatsAndLogLines(t *testing.T) {
	content := lines(3)
	f := newFixture(t, content, func(c *cache.Config[[]string]) {
		c.Describe = func(v []string) []slog.Attr { return []slog.Attr{slog.String("first", v[0])} }
	})
	if st := f.c.Stats(); st != (cache.Stats{}) {
		t.Errorf("Stats() before the first load = %+v, want zero", st)
	}
	f.get()
	want := cache.Stats{
		Loads: 1, Downloads: 1,
		Version:  cache.Version{Generation: t0.UnixNano(), Size: int64(len(content)), Name: fileName},
		Size:     3,
		LoadedAt: t0, CheckedAt: t0,
	}
	if st := f.c.Stats(); st != want {
		t.Errorf("Stats() after load = %+v, want %+v", st, want)
	}
	loaded := f.logs.records(t, "metadata loaded")
	if len(loaded) != 1 {
		t.Fatalf("%d \"metadata loaded\" log lines, want 1", len(loaded))
	}
	for key, val := range map[string]any{
		"level": "INFO", "source": fileName, "generation": float64(t0.UnixNano()),
		"size": 3.0, "bytes": float64(len(content)), "first": "d0",
	} {
		if got := loaded[0][key]; got != val {
			t.Errorf("log attribute %s = %v, want %v", key, got, val)
		}
	}
	if _, ok := loaded[0]["duration_ms"]; !ok {
		t.Errorf("log line %v has no duration_ms", loaded[0])
	}

	f.clock.Advance(time.Hour)
	f.settle()
	f.clock.Advance(10 * time.Minute)
	want.Checks, want.CheckedAt, want.Age = 1, t0.Add(time.Hour), 10*time.Minute
	if st := f.c.Stats(); st != want {
		t.Errorf("Stats() after check = %+v, want %+v", st, want)
	}
	if n := len(f.logs.records(t, "metadata loaded")); n != 1 {
		t.Errorf("%d \"metadata loaded\" log lines after an unchanged check, want 1", n)
	}
	if recs := f.logs.records(t, "metadata unchanged"); len(recs) != 1 || recs[0]["level"] != "DEBUG" {
		t.Errorf("\"metadata unchanged\" log lines = %v, want one at DEBUG", recs)
	}
}

func newWarmCache(tb testing.TB, now func() time.Time) *cache.Cache[[]string] {
	fsys := fstest.MapFS{fileName: {Data: []byte(lines(3))}}
	c := cache.New(cache.Config[[]string]{
		Source: cache.NewFileSource(fsys, fileName),
		Parse:  parseLines,
		Size:   countLines,
		Now:    now,
		Logger: slog.New(slog.DiscardHandler),
	})
	if _, err := c.Get(context.Background()); err != nil {
		tb.Fatalf("Get: %v", err)
	}
	return c
}

// The hit path (Get on a fresh value, and Miss) does not allocate.
func TestHitPathDoesNotAllocate(t *testing.T) {
	for _, tc := range []struct {
		name string
		now  func() time.Time
	}{
		{"time.Now", nil},
		{"injected clock", newClock().Now},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newWarmCache(t, tc.now)
			ctx := context.Background()
			if n := testing.AllocsPerRun(1000, func() { c.Get(ctx) }); n != 0 {
				t.Errorf("Get allocates %v times per call, want 0", n)
			}
			if n := testing.AllocsPerRun(1000, c.Miss); n != 0 {
				t.Errorf("Miss allocates %v times per call, want 0", n)
			}
		})
	}
}

func BenchmarkGetHit(b *testing.B) {
	c := newWarmCache(b, nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Get(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetHitParallel(b *testing.B) {
	c := newWarmCache(b, nil)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Get(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestThrottledPathsDoNotAllocate: a Miss throttled by the last one, and a
// Get past the TTL while a failed refresh backs off, do not allocate
// either (each keeps a time.Time behind an atomic pointer).
func TestThrottledPathsDoNotAllocate(t *testing.T) {
	f := newFixture(t, lines(3), nil)
	f.get()
	f.fs.remove(fileName)
	f.clock.Advance(2 * time.Minute)
	f.c.Miss() // a check, which fails: CheckedAt stays 2m old
	f.c.Wait()
	f.clock.Advance(10 * time.Second)
	if n := testing.AllocsPerRun(1000, f.c.Miss); n != 0 {
		t.Errorf("Miss throttled by the last one allocates %v times per call, want 0", n)
	}
	f.clock.Advance(2 * time.Hour)
	ctx := context.Background()
	f.c.Get(ctx)
	f.c.Wait()
	if n := testing.AllocsPerRun(1000, func() { f.c.Get(ctx) }); n != 0 {
		t.Errorf("Get past the TTL, backing off, allocates %v times per call, want 0", n)
	}
}
