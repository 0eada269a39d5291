package cache

import (
	"context"
	"errors"
	"io"
)

// Version identifies one version of the source object.
type Version struct {
	// Generation is the GCS object generation; for files, the modification
	// time in nanoseconds (never 0: 1 when the mtime is zero, as in embed.FS).
	Generation int64
	// Size is the stored size in bytes.
	Size int64
	// Name is the object or file name, for format detection by extension.
	Name            string
	ContentType     string
	ContentEncoding string
}

// Same reports whether v and o are the same version (Generation and Size equal).
func (v Version) Same(o Version) bool {
	return v.Generation == o.Generation && v.Size == o.Size
}

// ErrVersionGone is returned by Source.Open when the requested version no
// longer exists (the object was replaced between Stat and Open).
var ErrVersionGone = errors.New("cache: source version no longer exists")

// Source is where the value's bytes come from. Implementations must be safe
// for concurrent use.
type Source interface {
	// Stat returns the current version's metadata, without downloading it.
	Stat(ctx context.Context) (Version, error)
	// Open returns exactly version v's bytes, or an error wrapping
	// ErrVersionGone if v has been replaced. The bytes are as stored where
	// the source can (gzip stays gzip), but a gzip-encoded GCS object may
	// arrive decompressed (see NewGCSSource): parsers should sniff the gzip
	// header rather than trust ContentEncoding or a .gz name.
	Open(ctx context.Context, v Version) (io.ReadCloser, error)
	// String names the source for logs: gs://bucket/object or the file name.
	String() string
}

// History is implemented by a Source that keeps the versions it replaced,
// such as a GCS bucket with object versioning. A first load that finds the
// source's version rejected serves the newest older one that passes.
type History interface {
	// Older returns up to n versions older than v, newest first, each one
	// that Open reads.
	Older(ctx context.Context, v Version, n int) ([]Version, error)
}

// countingReader counts the bytes read through it and keeps the first
// read error other than io.EOF, to tell a failed download from bad data.
type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}
