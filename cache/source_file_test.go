package cache_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/devicestream/enrichevent/cache"
)

func TestFileSourceVersion(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		before     *fstest.MapFile
		after      *fstest.MapFile
		wantSame   bool
		wantBefore int64 // Generation of before
	}{
		{"unchanged", &fstest.MapFile{Data: []byte("a\n"), ModTime: t0}, &fstest.MapFile{Data: []byte("a\n"), ModTime: t0}, true, t0.UnixNano()},
		{"new size", &fstest.MapFile{Data: []byte("a\n"), ModTime: t0}, &fstest.MapFile{Data: []byte("ab\n"), ModTime: t0}, false, t0.UnixNano()},
		{"new mtime", &fstest.MapFile{Data: []byte("a\n"), ModTime: t0}, &fstest.MapFile{Data: []byte("b\n"), ModTime: t0.Add(1)}, false, t0.UnixNano()},
		{"zero mtime", &fstest.MapFile{Data: []byte("a\n")}, &fstest.MapFile{Data: []byte("ab\n")}, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{"m.csv": tc.before}
			src := cache.NewFileSource(fsys, "m.csv")
			v1, err := src.Stat(ctx)
			if err != nil {
				t.Fatalf("Stat: %v", err)
			}
			if want := (cache.Version{Generation: tc.wantBefore, Size: int64(len(tc.before.Data)), Name: "m.csv"}); v1 != want {
				t.Errorf("Stat() = %+v, want %+v", v1, want)
			}
			fsys["m.csv"] = tc.after
			v2, err := src.Stat(ctx)
			if err != nil {
				t.Fatalf("Stat after change: %v", err)
			}
			if got := v1.Same(v2); got != tc.wantSame {
				t.Errorf("Stat() before %+v, after %+v: Same = %v, want %v", v1, v2, got, tc.wantSame)
			}
			_, err = src.Open(ctx, v1)
			if gone := errors.Is(err, cache.ErrVersionGone); gone == tc.wantSame {
				t.Errorf("Open(old version) error = %v, want ErrVersionGone: %v", err, !tc.wantSame)
			}
			if got := readAll(t, src, v2); got != string(tc.after.Data) {
				t.Errorf("Open(current version) read %q, want %q", got, tc.after.Data)
			}
		})
	}
}

func TestFileSourceDirFS(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "m.csv")
	if err := os.WriteFile(path, []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := cache.NewFileSource(os.DirFS(dir), "m.csv")
	if s := src.String(); s != "m.csv" {
		t.Errorf("String() = %q, want %q", s, "m.csv")
	}
	v1, err := src.Stat(ctx)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	mtime := time.Unix(0, v1.Generation).Add(time.Second)
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	v2, err := src.Stat(ctx)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if v1.Same(v2) || v2.Generation != mtime.UnixNano() {
		t.Errorf("Stat() after touch = %+v, want generation %d (before: %+v)", v2, mtime.UnixNano(), v1)
	}
	if got := readAll(t, src, v2); got != "a\n" {
		t.Errorf("Open() read %q, want %q", got, "a\n")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Stat(ctx); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat() of a removed file: error = %v, want fs.ErrNotExist", err)
	}
}

func readAll(t *testing.T, src cache.Source, v cache.Version) string {
	t.Helper()
	rc, err := src.Open(context.Background(), v)
	if err != nil {
		t.Fatalf("Open(%+v): %v", v, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", src, err)
	}
	return string(b)
}

// TestLoadTimeoutBoundsAHungMount: a file on a hung NFS or FUSE mount
// blocks its reader whatever the context says. The first load and a
// refresh still end at LoadTimeout, so the first load is tried again and
// the refresh flag drops, and once the mount answers the cache loads.
func TestLoadTimeoutBoundsAHungMount(t *testing.T) {
	clock := newClock()
	fsys := &hangingFS{FS: fstest.MapFS{"m.csv": &fstest.MapFile{Data: []byte(lines(3)), ModTime: t0}}}
	c := cache.New(cache.Config[[]string]{
		Source:      cache.NewFileSource(fsys, "m.csv"),
		Parse:       parseLines,
		LoadTimeout: 50 * time.Millisecond,
		Now:         clock.Now,
		Logger:      slog.New(slog.DiscardHandler),
	})
	get := func() (*cache.Snapshot[[]string], error) {
		t.Helper()
		return returnsWithin(t, "Get, in a load whose LoadTimeout is 50ms,", func() (*cache.Snapshot[[]string], error) {
			return c.Get(context.Background())
		})
	}

	release := fsys.hang()
	if _, err := get(); err == nil || !strings.Contains(err.Error(), "did not answer within the load timeout") {
		t.Fatalf("first Get on a hung mount: error %v, want the load timeout", err)
	}
	release()
	clock.Advance(2 * time.Second) // past the first load's retry interval
	if s, err := get(); err != nil || len(s.Value) != 3 {
		t.Fatalf("Get once the mount answers = %v, %v; want the 3 lines", s, err)
	}

	release = fsys.hang()
	fsys.mu.Lock()
	fsys.FS = fstest.MapFS{"m.csv": &fstest.MapFile{Data: []byte(lines(4)), ModTime: t0.Add(time.Hour)}}
	fsys.mu.Unlock()
	clock.Advance(2 * time.Hour)
	if s, err := get(); err != nil || len(s.Value) != 3 {
		t.Fatalf("Get starting a refresh on a hung mount = %v, %v; want the 3 lines", s, err)
	}
	waited := make(chan struct{})
	go func() { c.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(time.Minute):
		t.Fatal("refresh still running a minute into a hung mount, LoadTimeout 50ms")
	}
	if st := c.Stats(); st.Failures != 2 || !strings.Contains(st.LastError, "did not answer") {
		t.Errorf("after the refresh on a hung mount: %d failures, last error %q; want 2, the load timeout", st.Failures, st.LastError)
	}
	release()
	clock.Advance(2 * time.Hour) // past the backoff
	get()
	c.Wait()
	if s, err := get(); err != nil || len(s.Value) != 4 {
		t.Fatalf("Get after a refresh once the mount answers = %v, %v; want the 4 lines", s, err)
	}
}

// hangingFS is a file system whose Open blocks while it hangs, as one on a
// hung network mount does, ignoring every context.
type hangingFS struct {
	fs.FS
	mu   sync.Mutex
	gate chan struct{} // nil: not hanging
}

// hang makes Open block until release is called.
func (f *hangingFS) hang() (release func()) {
	gate := make(chan struct{})
	f.mu.Lock()
	f.gate = gate
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		f.gate = nil
		f.mu.Unlock()
		close(gate)
	}
}

func (f *hangingFS) Open(name string) (fs.File, error) {
	f.mu.Lock()
	gate, fsys := f.gate, f.FS
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return fsys.Open(name)
}

// stallingSource is a Source whose downloads send nothing, until their
// context ends: a connection that stalls mid-download.
type stallingSource struct{ cache.Source }

func (s stallingSource) Open(ctx context.Context, _ cache.Version) (io.ReadCloser, error) {
	return io.NopCloser(readerFunc(func([]byte) (int, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	})), nil
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// TestFirstLoadTimeout: every request of a cold instance waits for the
// first load, so a download that stalls is given up after
// FirstLoadTimeout, not the refreshes' LoadTimeout, and the next request
// tries again.
func TestFirstLoadTimeout(t *testing.T) {
	fsys := fstest.MapFS{"m.csv": &fstest.MapFile{Data: []byte(lines(3)), ModTime: t0}}
	c := cache.New(cache.Config[[]string]{
		Source:           stallingSource{cache.NewFileSource(fsys, "m.csv")},
		Parse:            parseLines,
		LoadTimeout:      time.Hour,
		FirstLoadTimeout: 50 * time.Millisecond,
		Logger:           slog.New(slog.DiscardHandler),
	})
	// The LoadTimeout is an hour: without the first load's bound, Get hangs.
	_, err := returnsWithin(t, "Get, in a first load whose FirstLoadTimeout is 50ms,", func() (*cache.Snapshot[[]string], error) {
		return c.Get(context.Background())
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Get on a stalled download = %v, want DeadlineExceeded", err)
	}
}
