package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/devicestream/enrichevent/enrich"
)

// Stdout writes rows and error records as JSON lines, for local runs:
// {"row":{...}} for a row (the JSON of enrich.Row: the rows table's
// columns) and {"error_record":{...}} for an error record (the JSON of
// enrich.ErrorRecord; its payload is base64), so that a reader, or jq, can
// tell them apart by the key.
//
// It is safe for concurrent use: each call's lines are written with one
// Write under a mutex, never interleaved with another call's.
type Stdout struct {
	mu sync.Mutex
	w  io.Writer
}

var _ Sink = (*Stdout)(nil)

// NewStdout returns a sink writing JSON lines to w (typically os.Stdout).
func NewStdout(w io.Writer) *Stdout {
	return &Stdout{w: w}
}

// rowLine and errorLine are the shapes of the two kinds of line.
type (
	rowLine struct {
		Row *enrich.Row `json:"row"`
	}
	errorLine struct {
		ErrorRecord *enrich.ErrorRecord `json:"error_record"`
	}
)

// WriteRows writes one {"row":...} line per row.
func (s *Stdout) WriteRows(_ context.Context, rows []enrich.Row) error {
	return writeLines(s, rows, func(r *enrich.Row) any { return rowLine{r} })
}

// WriteErrors writes one {"error_record":...} line per record.
func (s *Stdout) WriteErrors(_ context.Context, recs []enrich.ErrorRecord) error {
	return writeLines(s, recs, func(r *enrich.ErrorRecord) any { return errorLine{r} })
}

func writeLines[T any](s *Stdout, items []T, line func(*T) any) error {
	if len(items) == 0 {
		return nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i := range items {
		if err := enc.Encode(line(&items[i])); err != nil {
			return fmt.Errorf("stdout sink: encode: %w", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("stdout sink: %w", err)
	}
	return nil
}
