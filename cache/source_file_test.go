package cache_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
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
