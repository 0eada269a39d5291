package sink

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by writes to a sink after Close.
var ErrClosed = errors.New("sink: closed")

// batcher coalesces the rows of concurrent callers into batches, one append
// each. The policy, group commit with a deadline:
//
//   - when no batch is in flight, rows are sent at once: a lone request
//     never waits;
//   - while batches are in flight, rows collect in the open batch, which is
//     sent when it reaches maxRows or maxBytes, when maxDelay has passed since
//     its first row, or when the last in-flight batch finishes, whichever
//     comes first.
//
// Each batch is sent on a goroutine of its own that lives for one append;
// nothing runs while the sink is idle. A batcher is safe for concurrent use.
type batcher[T any] struct {
	maxRows  int
	maxBytes int
	maxDelay time.Duration
	send     func(*batch[T]) // appends the batch and sets its errors; must return

	pending atomic.Int64 // rows added and not yet answered

	mu       sync.Mutex
	open     *batch[T] // collecting rows; nil when none
	inflight int       // batches handed to send and not finished
	closed   bool
	wg       sync.WaitGroup // one per batch in flight
}

// batch is the unit of one append: the serialized rows, the values they
// came from, and after done is closed the outcome.
type batch[T any] struct {
	data  [][]byte
	items []T
	bytes int
	timer *time.Timer

	// opened is when the batch got its first row: no caller of the batch
	// has waited longer, so a deadline counted from it bounds every
	// caller's wait, with one timer per batch rather than one per call.
	opened time.Time

	done   chan struct{}
	err    error   // the whole batch failed
	rowErr []error // else per row (nil slice: every row stored)
}

// span is one caller's rows in a batch: data[start:end].
type span[T any] struct {
	b          *batch[T]
	start, end int
}

// add queues rows (data[i] serialized from items[i]) and returns where they
// went. A caller's rows stay together unless they overflow a batch.
func (q *batcher[T]) add(data [][]byte, items []T) ([]span[T], error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil, ErrClosed
	}
	q.pending.Add(int64(len(data)))
	var spans []span[T]
	for i, row := range data {
		if b := q.open; b != nil && (len(b.data) >= q.maxRows || b.bytes+len(row) > q.maxBytes) {
			q.sendLocked()
		}
		if q.open == nil {
			q.open = &batch[T]{done: make(chan struct{}), opened: time.Now()}
		}
		b := q.open
		if len(spans) == 0 || spans[len(spans)-1].b != b {
			spans = append(spans, span[T]{b: b, start: len(b.data), end: len(b.data)})
		}
		b.data = append(b.data, row)
		b.items = append(b.items, items[i])
		b.bytes += len(row)
		spans[len(spans)-1].end++
	}
	switch b := q.open; {
	case b == nil:
	case q.inflight == 0 || len(b.data) >= q.maxRows || b.bytes >= q.maxBytes:
		q.sendLocked()
	case b.timer == nil:
		b.timer = time.AfterFunc(q.maxDelay, func() { q.expire(b) })
	}
	return spans, nil
}

// expire sends b if it is still the open batch when its delay runs out.
func (q *batcher[T]) expire(b *batch[T]) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.open == b {
		q.sendLocked()
	}
}

// sendLocked hands the open batch to send on its own goroutine. q.mu must be
// held.
func (q *batcher[T]) sendLocked() {
	b := q.open
	q.open = nil
	if b.timer != nil {
		b.timer.Stop()
	}
	q.inflight++
	q.wg.Add(1)
	go q.run(b)
}

func (q *batcher[T]) run(b *batch[T]) {
	defer q.wg.Done()
	q.send(b)
	q.pending.Add(-int64(len(b.data)))
	close(b.done)
	q.mu.Lock()
	defer q.mu.Unlock()
	q.inflight--
	if q.inflight == 0 && q.open != nil {
		q.sendLocked()
	}
}

// close refuses further rows, sends the open batch, and waits until every
// batch in flight is finished.
func (q *batcher[T]) close() {
	q.mu.Lock()
	q.closed = true
	if q.open != nil {
		q.sendLocked()
	}
	q.mu.Unlock()
	q.wg.Wait()
}

// wait blocks until every span's batch is finished, and returns the first
// error that concerns the caller's rows. table names the destination in
// errors.
func wait[T any](ctx context.Context, table string, spans []span[T]) error {
	for _, s := range spans {
		select {
		case <-s.b.done:
		case <-ctx.Done():
			return fmt.Errorf("wait for append to %s: %w", table, context.Cause(ctx))
		}
		if err := s.b.errIn(s.start, s.end); err != nil {
			return err
		}
	}
	return nil
}

// errIn reports the outcome of rows [start, end) of a finished batch.
func (b *batch[T]) errIn(start, end int) error {
	if b.err != nil {
		return b.err
	}
	if b.rowErr == nil {
		return nil
	}
	for _, err := range b.rowErr[start:end] {
		if err != nil {
			return err
		}
	}
	return nil
}

// setErr records err for rows idx of the batch.
func (b *batch[T]) setErr(idx []int, err error) {
	if err == nil {
		return
	}
	if b.rowErr == nil {
		b.rowErr = make([]error, len(b.data))
	}
	for _, i := range idx {
		b.rowErr[i] = err
	}
}
