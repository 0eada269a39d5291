package sink

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/devicestream/enrichevent/enrich"
)

// Stdout writes rows and error records as JSON lines, for local runs:
// {"row":{...}} for a row (the JSON of enrich.Row: the rows table's
// columns) and {"error_record":{...}} for an error record (the JSON of
// enrich.ErrorRecord; its payload is base64), so that a reader, or jq, can
// tell them apart by the key. The lines are the bytes that encoding/json
// writes, without HTML escaping; rows are encoded by a hand-written
// appender (stdout_encode.go) that produces those bytes without
// reflection.
//
// A row's JSON columns (DeviceMetadata, Payload, Attributes) are trusted,
// not validated again: a nil or empty one is written as null; any other
// must hold one valid JSON value, as those of enrich.BuildRow's rows do,
// and is written without its insignificant whitespace, so that a row stays
// one line. WriteRows fails, writing nothing, only for a row with a time
// that time.Time.MarshalJSON rejects (a year outside 0..9999, a zone
// offset of 24 hours or more), with encoding/json's error.
//
// It is safe for concurrent use: each call's lines are written with one
// Write under a mutex, never interleaved with another call's, and the call
// returns once that Write has returned.
type Stdout struct {
	mu sync.Mutex
	w  io.Writer
}

var _ Sink = (*Stdout)(nil)

// NewStdout returns a sink writing JSON lines to w (typically os.Stdout).
func NewStdout(w io.Writer) *Stdout {
	return &Stdout{w: w}
}

// WriteRows writes one {"row":...} line per row.
func (s *Stdout) WriteRows(_ context.Context, rows []enrich.Row) error {
	return writeLines(s, rows, appendRowLine)
}

// WriteErrors writes one {"error_record":...} line per record. Error
// records are rare: encoding/json encodes them.
func (s *Stdout) WriteErrors(_ context.Context, recs []enrich.ErrorRecord) error {
	return writeLines(s, recs, func(dst []byte, r *enrich.ErrorRecord) ([]byte, error) {
		return appendJSONLine(dst, errorLine{r})
	})
}

// linePool holds the buffers that writeLines encodes into, as *[]byte so
// that Get and Put do not allocate. A buffer goes back to the pool only
// after the Write that used it has returned (io.Writer must not retain it).
var linePool = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledLine is the largest buffer kept in linePool, so that one large
// batch does not pin its buffer for the life of the process.
const maxPooledLine = 64 << 10

// writeLines appends the line of each item with appendLine into a pooled
// buffer and writes them all with one Write under s.mu.
func writeLines[T any](s *Stdout, items []T, appendLine func([]byte, *T) ([]byte, error)) error {
	if len(items) == 0 {
		return nil
	}
	bp := linePool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledLine {
			linePool.Put(bp)
		}
	}()
	b := (*bp)[:0]
	for i := range items {
		var err error
		if b, err = appendLine(b, &items[i]); err != nil {
			return fmt.Errorf("stdout sink: encode: %w", err)
		}
	}
	*bp = b
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.w.Write(b); err != nil {
		return fmt.Errorf("stdout sink: %w", err)
	}
	return nil
}
