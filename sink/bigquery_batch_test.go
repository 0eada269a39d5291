package sink

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/devicestream/enrichevent/enrich"
)

// Batching, observed through the fake: how many appends the writes make.

func TestBigQueryLoneWriteIsOneAppend(t *testing.T) {
	// With an hour of batching delay, only the immediate flush of a lone
	// request lets this test finish.
	e := newEnv(t, BigQueryConfig{BatchMaxDelay: time.Hour})
	for i := range 3 {
		if err := e.w.WriteRows(context.Background(), []enrich.Row{sampleRow(i)}); err != nil {
			t.Fatalf("WriteRows: %v", err)
		}
		if got, want := e.fake.Appends(), int64(i+1); got != want {
			t.Errorf("after %d lone writes the fake saw %d appends, want %d", i+1, got, want)
		}
	}
}

func TestBigQueryCoalescesConcurrentWrites(t *testing.T) {
	const writers = 200
	tests := []struct {
		maxRows     int
		wantAppends int64
	}{
		// The first write goes alone and is held at the fake; the other 199
		// queue behind it, in batches of at most maxRows. The last batch
		// leaves when nothing is in flight any more.
		{maxRows: 500, wantAppends: 2},
		{maxRows: 50, wantAppends: 1 + 4},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("max_rows=%d", tt.maxRows), func(t *testing.T) {
			e := newEnv(t, BigQueryConfig{BatchMaxRows: tt.maxRows, BatchMaxDelay: time.Hour})
			release := e.fake.Hold()
			defer release()
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			write := func(i int) {
				errs <- e.w.WriteRows(context.Background(), []enrich.Row{sampleRow(i)})
			}
			wg.Go(func() { write(0) })
			waitFor(t, "the first append to reach the fake", func() bool { return e.fake.Appends() == 1 })
			for i := 1; i < writers; i++ {
				wg.Go(func() { write(i) })
			}
			waitFor(t, "every row to be queued", func() bool { return e.w.Stats().PendingRows == writers })
			release()
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Errorf("WriteRows: %v", err)
				}
			}
			if got := e.fake.Appends(); got != tt.wantAppends {
				t.Errorf("%d concurrent writes made %d appends, want %d", writers, got, tt.wantAppends)
			}
			ids := make(map[string]bool)
			for _, r := range e.rows() {
				ids[r["message_id"].(string)] = true
			}
			if len(ids) != writers {
				t.Errorf("rows table has %d distinct rows, want %d", len(ids), writers)
			}
		})
	}
}

func TestBigQueryBatchMaxDelay(t *testing.T) {
	e := newEnv(t, BigQueryConfig{BatchMaxDelay: time.Millisecond})
	release := e.fake.Hold()
	defer release()
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			if err := e.w.WriteRows(context.Background(), []enrich.Row{sampleRow(i)}); err != nil {
				t.Errorf("WriteRows: %v", err)
			}
		})
		// The second write finds the first in flight and waits for the
		// delay, not for the first to finish, which never happens while held.
		// (The fake reads a connection's requests in order, so it only sees
		// the second once the first is released: count the writer's sends.)
		waitFor(t, fmt.Sprintf("append %d to be sent", i+1), func() bool { return e.w.Stats().Appends == int64(i+1) })
	}
	release()
	wg.Wait()
	if n := len(e.rows()); n != 2 {
		t.Errorf("rows table has %d rows, want 2", n)
	}
}

func TestBigQueryManyConcurrentWrites(t *testing.T) {
	e := newEnv(t, BigQueryConfig{})
	const writers = 200
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			if err := e.w.WriteRows(context.Background(), []enrich.Row{sampleRow(i)}); err != nil {
				t.Errorf("WriteRows: %v", err)
			}
		})
	}
	wg.Wait()
	ids := make(map[string]bool)
	for _, r := range e.rows() {
		ids[r["message_id"].(string)] = true
	}
	if len(ids) != writers || len(e.rows()) != writers {
		t.Errorf("rows table has %d rows (%d distinct), want %d", len(e.rows()), len(ids), writers)
	}
	t.Logf("%d concurrent writes: %d appends", writers, e.fake.Appends())
}
