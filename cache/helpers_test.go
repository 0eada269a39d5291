package cache_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"testing/iotest"
	"time"

	"github.com/devicestream/enrichevent/cache"
)

// t0 is when every test's clock starts.
var t0 = time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)

// fakeClock is an injected clock that moves only when told to.
type fakeClock struct{ ns atomic.Int64 }

func newClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(t0.UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// memFS is an fstest.MapFS that tests may change while the cache reads it.
type memFS struct {
	mu sync.Mutex
	m  fstest.MapFS
}

func (f *memFS) Open(name string) (fs.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m.Open(name)
}

// set replaces the file (never mutating the old one, which readers may hold).
func (f *memFS) set(name, data string, mtime time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m[name] = &fstest.MapFile{Data: []byte(data), ModTime: mtime}
}

func (f *memFS) remove(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.m, name)
}

// countingSource wraps a real Source, counting calls. With a gate set, Stat
// announces itself on entered and waits for the gate to close (or for its
// context, so a load wrongly tied to a caller's context fails).
type countingSource struct {
	cache.Source
	stats, opens atomic.Int64
	gate         atomic.Pointer[chan struct{}]
	entered      chan struct{}
	beforeOpen   atomic.Pointer[func()]
	readErr      atomic.Pointer[error] // if set, a download fails with it after a few bytes
}

var _ cache.Source = (*countingSource)(nil)

func newCountingSource(src cache.Source) *countingSource {
	return &countingSource{Source: src, entered: make(chan struct{}, 100)}
}

func (s *countingSource) Stat(ctx context.Context) (cache.Version, error) {
	s.stats.Add(1)
	if g := s.gate.Load(); g != nil {
		s.entered <- struct{}{}
		select {
		case <-*g:
		case <-ctx.Done():
			return cache.Version{}, ctx.Err()
		}
	}
	return s.Source.Stat(ctx)
}

func (s *countingSource) Open(ctx context.Context, v cache.Version) (io.ReadCloser, error) {
	s.opens.Add(1)
	if f := s.beforeOpen.Load(); f != nil {
		(*f)()
	}
	rc, err := s.Source.Open(ctx, v)
	if e := s.readErr.Load(); e != nil && err == nil {
		cut := io.MultiReader(io.LimitReader(rc, 2), iotest.ErrReader(*e))
		return struct {
			io.Reader
			io.Closer
		}{cut, rc}, nil
	}
	return rc, err
}

// Older passes on to the wrapped Source's History, if it has one.
func (s *countingSource) Older(ctx context.Context, v cache.Version, n int) ([]cache.Version, error) {
	if h, ok := s.Source.(cache.History); ok {
		return h.Older(ctx, v, n)
	}
	return nil, nil
}

// closeGate makes Stat wait until the returned func is called.
func (s *countingSource) closeGate() (release func()) {
	g := make(chan struct{})
	s.gate.Store(&g)
	return func() { s.gate.Store(nil); close(g) }
}

// parseLines is the tests' Parse: one entry per line. A last line without
// its newline means the file was cut short: an error. A file starting with
// "panic" makes it panic, like a parser bug would.
func parseLines(r io.Reader, _ cache.Version) ([]string, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		return nil, errors.New("partial last line")
	}
	if bytes.HasPrefix(b, []byte("panic")) {
		panic("parser bug")
	}
	return strings.Split(string(b), "\n")[:bytes.Count(b, []byte("\n"))], nil
}

func countLines(v []string) int { return len(v) }

// lines returns n numbered lines: "d0\nd1\n...".
func lines(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "d%d\n", i)
	}
	return b.String()
}

// logBuffer collects JSON log lines; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// records returns the logged records with the given message.
func (l *logBuffer) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for line := range strings.Lines(l.buf.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// fixture is a cache of lines over a changeable file, with an injected clock.
type fixture struct {
	t     *testing.T
	fs    *memFS
	src   *countingSource
	clock *fakeClock
	logs  *logBuffer
	c     *cache.Cache[[]string]
}

const fileName = "devices.txt"

// newFixture returns a cache over a file holding content ("" for no file);
// edit, if not nil, adjusts the Config.
func newFixture(t *testing.T, content string, edit func(*cache.Config[[]string])) *fixture {
	f := &fixture{t: t, fs: &memFS{m: fstest.MapFS{}}, clock: newClock(), logs: &logBuffer{}}
	if content != "" {
		f.fs.set(fileName, content, f.clock.Now())
	}
	f.src = newCountingSource(cache.NewFileSource(f.fs, fileName))
	cfg := cache.Config[[]string]{
		Source: f.src,
		Parse:  parseLines,
		Size:   countLines,
		Now:    f.clock.Now,
		Logger: slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if edit != nil {
		edit(&cfg)
	}
	f.c = cache.New(cfg)
	t.Cleanup(f.c.Wait)
	return f
}

// write replaces the file, with the clock's time as its mtime.
func (f *fixture) write(content string) { f.fs.set(fileName, content, f.clock.Now()) }

// get calls Get, failing the test on error.
func (f *fixture) get() *cache.Snapshot[[]string] {
	f.t.Helper()
	s, err := f.c.Get(context.Background())
	if err != nil {
		f.t.Fatalf("Get: %v", err)
	}
	return s
}

// settle calls Get and waits for any refresh it started.
func (f *fixture) settle() *cache.Snapshot[[]string] {
	f.t.Helper()
	s := f.get()
	f.c.Wait()
	return s
}

// wantCalls checks how often the source was asked for its version and opened.
func (f *fixture) wantCalls(stats, opens int64) {
	f.t.Helper()
	if got := f.src.stats.Load(); got != stats {
		f.t.Errorf("Source.Stat called %d times, want %d", got, stats)
	}
	if got := f.src.opens.Load(); got != opens {
		f.t.Errorf("Source.Open called %d times, want %d", got, opens)
	}
}

// waitRunning spins until n loads or refreshes are in progress.
func waitRunning[T any](c *cache.Cache[T], n int) {
	for cache.Running(c) < n {
		runtime.Gosched()
	}
}

// returnsWithin runs f in its own goroutine and returns what it returns,
// failing the test if f has not returned a minute later: a liveness bound
// on a call that would otherwise hang, not a speed target. what names the
// call for the failure.
func returnsWithin[T any](t *testing.T, what string, f func() (T, error)) (T, error) {
	t.Helper()
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := f()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-time.After(time.Minute):
		t.Fatalf("%s still waiting after a minute", what)
		var zero T
		return zero, nil
	}
}
