package cache

import (
	"context"
	"fmt"
	"io"
	"io/fs"
)

// fileSource reads one file of a file system.
type fileSource struct {
	fsys fs.FS
	name string
}

// NewFileSource returns a Source for the file name in fsys: a local
// directory (os.DirFS) or embedded files (embed.FS). The version is the
// file's size and modification time, so a replacement that keeps both
// (possible on file systems with coarse timestamps) goes unnoticed.
func NewFileSource(fsys fs.FS, name string) Source {
	return &fileSource{fsys: fsys, name: name}
}

func (s *fileSource) Stat(context.Context) (Version, error) {
	fi, err := fs.Stat(s.fsys, s.name)
	if err != nil {
		return Version{}, err
	}
	return s.version(fi), nil
}

// Open opens the file and checks that it is still version v.
func (s *fileSource) Open(_ context.Context, v Version) (io.ReadCloser, error) {
	f, err := s.fsys.Open(s.name)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if got := s.version(fi); !got.Same(v) {
		f.Close()
		return nil, fmt.Errorf("%w: %s changed (size %d, mtime %d; want size %d, mtime %d)",
			ErrVersionGone, s.name, got.Size, got.Generation, v.Size, v.Generation)
	}
	return f, nil
}

func (s *fileSource) String() string { return s.name }

func (s *fileSource) version(fi fs.FileInfo) Version {
	var gen int64 = 1 // zero mtime (embed.FS, fstest.MapFS)
	if mt := fi.ModTime(); !mt.IsZero() && mt.UnixNano() != 0 {
		gen = mt.UnixNano()
	}
	return Version{Generation: gen, Size: fi.Size(), Name: s.name}
}
