package sink

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// recorder is a batcher's send function that records batch sizes and fails
// the rows whose item is "bad".
type recorder struct {
	mu    sync.Mutex
	sizes []int
}

func (r *recorder) send(b *batch[string]) {
	r.mu.Lock()
	r.sizes = append(r.sizes, len(b.data))
	r.mu.Unlock()
	for i, item := range b.items {
		if item == "bad" {
			b.setErr([]int{i}, errors.New("bad row"))
		}
	}
}

func rowsOf(n, size int) ([][]byte, []string) {
	data := make([][]byte, n)
	items := make([]string, n)
	for i := range data {
		data[i] = make([]byte, size)
		items[i] = "ok"
	}
	return data, items
}

func TestBatcherSplitsLargeCalls(t *testing.T) {
	tests := []struct {
		name      string
		maxRows   int
		maxBytes  int
		rows      int
		wantSpans []int
	}{
		{"by rows", 2, 1 << 20, 5, []int{2, 2, 1}},
		{"by bytes", 100, 10, 5, []int{2, 2, 1}}, // 4-byte rows, 10 bytes a batch
		{"fits", 100, 1 << 20, 5, []int{5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			q := &batcher[string]{maxRows: tt.maxRows, maxBytes: tt.maxBytes, maxDelay: time.Hour, send: rec.send}
			spans, err := q.add(rowsOf(tt.rows, 4))
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, s := range spans {
				got = append(got, s.end-s.start)
			}
			if !slices.Equal(got, tt.wantSpans) {
				t.Errorf("add(%d rows) spans = %v, want %v", tt.rows, got, tt.wantSpans)
			}
			if err := wait(context.Background(), "t", spans); err != nil {
				t.Errorf("wait = %v", err)
			}
			q.close()
			slices.Sort(rec.sizes)
			want := slices.Sorted(slices.Values(tt.wantSpans))
			if !slices.Equal(rec.sizes, want) {
				t.Errorf("batches sent = %v, want %v", rec.sizes, want)
			}
			if n := q.pending.Load(); n != 0 {
				t.Errorf("pending = %d after every batch finished, want 0", n)
			}
		})
	}
}

func TestBatcherRowErrorsStayWithTheirCaller(t *testing.T) {
	gate := make(chan struct{})
	rec := &recorder{}
	q := &batcher[string]{maxRows: 100, maxBytes: 1 << 20, maxDelay: time.Hour, send: func(b *batch[string]) {
		<-gate
		rec.send(b)
	}}
	first, _ := q.add([][]byte{{1}}, []string{"ok"}) // in flight, held by gate
	good, _ := q.add([][]byte{{1}, {2}}, []string{"ok", "ok"})
	bad, _ := q.add([][]byte{{1}}, []string{"bad"})
	if good[0].b != bad[0].b {
		t.Fatal("the two callers behind the first are not in one batch")
	}
	close(gate)
	for name, c := range map[string]struct {
		spans []span[string]
		ok    bool
	}{"first": {first, true}, "good": {good, true}, "bad": {bad, false}} {
		if err := wait(context.Background(), "t", c.spans); (err == nil) != c.ok {
			t.Errorf("wait(%s) = %v, want success %v", name, err, c.ok)
		}
	}
	q.close()
	if !slices.Equal(rec.sizes, []int{1, 3}) {
		t.Errorf("batches sent = %v, want [1 3]", rec.sizes)
	}
	if _, err := q.add([][]byte{{1}}, []string{"ok"}); !errors.Is(err, ErrClosed) {
		t.Errorf("add after close = %v, want ErrClosed", err)
	}
}
