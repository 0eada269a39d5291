package sink

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/devicestream/enrichevent/enrich"
)

// exclusiveWriter counts Writes that overlap another.
type exclusiveWriter struct {
	busy    atomic.Bool
	mu      sync.Mutex
	buf     bytes.Buffer
	overlap atomic.Int64
}

func (w *exclusiveWriter) Write(p []byte) (int, error) {
	if !w.busy.CompareAndSwap(false, true) {
		w.overlap.Add(1)
	}
	defer w.busy.Store(false)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func TestStdoutLines(t *testing.T) {
	w := &exclusiveWriter{}
	s := NewStdout(w)
	const callers = 32
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			rows := []enrich.Row{sampleRow(c*10 + 0), sampleRow(c*10 + 1), sampleRow(c*10 + 2)}
			if err := s.WriteRows(context.Background(), rows); err != nil {
				t.Errorf("WriteRows: %v", err)
			}
			rec := enrich.ErrorRecord{
				Timestamp: time.Unix(1, 0).UTC(), Payload: []byte("not json <&>"), MessageID: fmt.Sprintf("e%d", c),
				Reason: enrich.ReasonInvalidJSON, ErrorMessage: "bad",
			}
			if err := s.WriteErrors(context.Background(), []enrich.ErrorRecord{rec}); err != nil {
				t.Errorf("WriteErrors: %v", err)
			}
		})
	}
	wg.Wait()
	if n := w.overlap.Load(); n != 0 {
		t.Errorf("%d overlapping Writes, want 0", n)
	}

	var rows, errs int
	var prev string // message id of the previous line, to check a call's rows are adjacent
	sc := bufio.NewScanner(&w.buf)
	for sc.Scan() {
		var line struct {
			Row         *enrich.Row         `json:"row"`
			ErrorRecord *enrich.ErrorRecord `json:"error_record"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("line %q is not a JSON object: %v", sc.Text(), err)
		}
		if rec := line.ErrorRecord; rec != nil {
			if line.Row != nil || rec.Reason != enrich.ReasonInvalidJSON || string(rec.Payload) != "not json <&>" {
				t.Errorf("error line %q: decoded %+v", sc.Text(), line)
			}
			errs++
			prev = ""
			continue
		}
		row := line.Row
		if row == nil || row.MessageID == "" || row.DeviceID != "dev-7" {
			t.Fatalf("row line %q: decoded %+v", sc.Text(), row)
		}
		var n int
		fmt.Sscanf(row.MessageID, "m%d", &n)
		if n%10 != 0 && prev != fmt.Sprintf("m%d", n-1) {
			t.Errorf("row %s follows %q: a call's rows were split", row.MessageID, prev)
		}
		prev = row.MessageID
		rows++
	}
	if rows != 3*callers || errs != callers {
		t.Errorf("got %d row lines and %d error lines, want %d and %d", rows, errs, 3*callers, callers)
	}
}

func TestStdoutEmpty(t *testing.T) {
	var buf bytes.Buffer
	s := NewStdout(&buf)
	if err := s.WriteRows(context.Background(), nil); err != nil {
		t.Errorf("WriteRows(nil) = %v", err)
	}
	if err := s.WriteErrors(context.Background(), nil); err != nil {
		t.Errorf("WriteErrors(nil) = %v", err)
	}
	if buf.Len() != 0 {
		t.Errorf("wrote %q, want nothing", buf.String())
	}
}

// TestStdoutErrorLines checks WriteErrors against encoding/json, which
// still encodes error records: the same bytes in one Write, or the same
// error and nothing written.
func TestStdoutErrorLines(t *testing.T) {
	rec := enrich.ErrorRecord{
		Timestamp: time.Date(2026, 11, 3, 10, 4, 5, 120, time.UTC), Payload: []byte("\x00<&>\xff"),
		Attributes: map[string]string{"b": "2", "a": "\u2028"}, MessageID: "m1",
		Reason: enrich.ReasonInvalidJSON, ErrorMessage: "bad <json>",
	}
	farFuture := rec
	farFuture.Timestamp = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		recs []enrich.ErrorRecord
	}{
		{"records", []enrich.ErrorRecord{rec, {}}},
		{"year 10000", []enrich.ErrorRecord{rec, farFuture}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want bytes.Buffer
			enc := json.NewEncoder(&want)
			enc.SetEscapeHTML(false)
			var wantErr error
			for i := range tt.recs {
				line := struct {
					ErrorRecord *enrich.ErrorRecord `json:"error_record"`
				}{&tt.recs[i]}
				if wantErr = enc.Encode(line); wantErr != nil {
					want.Reset()
					wantErr = fmt.Errorf("stdout sink: encode: %w", wantErr)
					break
				}
			}
			w := &countingWriter{}
			err := NewStdout(w).WriteErrors(context.Background(), tt.recs)
			if fmt.Sprint(err) != fmt.Sprint(wantErr) || w.buf.String() != want.String() {
				t.Errorf("WriteErrors = %v, wrote %q; want %v, %q", err, w.buf.String(), wantErr, want.String())
			}
			if wantErr == nil && w.writes != 1 {
				t.Errorf("WriteErrors made %d Writes, want 1", w.writes)
			}
		})
	}
}
