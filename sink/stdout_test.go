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
