package sink

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/bigquery/storage/apiv1/storagepb"
	"cloud.google.com/go/bigquery/storage/managedwriter"
	"google.golang.org/api/bigquery/v2"
	"google.golang.org/api/googleapi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrTableNotFound is returned (wrapped, with the table's name) by writes to
// a table that does not exist.
var ErrTableNotFound = errors.New("bigquery table not found")

// maxRejectRounds bounds the re-appends of one batch after row errors.
// BigQuery may list only some of the bad rows of a request, so the rest is
// appended again; each round removes at least one row.
const maxRejectRounds = 4

// tableWriter appends batches to the default stream of one table.
type tableWriter[T any] struct {
	w          *BigQuery
	name       string // project.dataset.table, for messages
	parent     string // projects/P/datasets/D/tables/T
	table      string
	schemaFile string
	schema     *TableSchema
	batcher    batcher[T]
	// reject handles rows BigQuery refused (idx into the batch, with
	// BigQuery's messages) and sets their errors.
	reject func(ctx context.Context, b *batch[T], idx []int, msgs []string)
	stored atomic.Int64

	openSem chan struct{} // held while opening; a channel so waiters honour ctx
	checked atomic.Bool   // tables.get found the table; cleared when an append finds none
	mu      sync.Mutex
	cur     *streamRef // nil until opened, and after it broke
}

// streamRef is one opened default stream; users counts the appends using it
// so that a broken stream is closed only when they are done.
type streamRef struct {
	ms     *managedwriter.ManagedStream
	cancel context.CancelFunc
	users  sync.WaitGroup
}

func newTableWriter[T any](w *BigQuery, table, schemaFile string, schema *TableSchema,
	reject func(context.Context, *batch[T], []int, []string)) *tableWriter[T] {
	t := &tableWriter[T]{
		w:          w,
		name:       w.cfg.Project + "." + w.cfg.Dataset + "." + table,
		parent:     managedwriter.TableParentFromParts(w.cfg.Project, w.cfg.Dataset, table),
		table:      table,
		schemaFile: schemaFile,
		schema:     schema,
		reject:     reject,
		openSem:    make(chan struct{}, 1),
	}
	t.batcher = batcher[T]{
		maxRows:  w.cfg.BatchMaxRows,
		maxBytes: maxBatchBytes,
		maxDelay: w.cfg.BatchMaxDelay,
		send:     t.flush,
	}
	return t
}

// flush appends batch b, moves the rows BigQuery rejects to t.reject and
// appends the others again, and records the outcome in b, all within
// WriteTimeout of when b opened: that is what bounds its callers' waits.
func (t *tableWriter[T]) flush(b *batch[T]) {
	ctx, cancel := context.WithDeadline(t.w.ctx, b.opened.Add(t.w.cfg.WriteTimeout))
	defer cancel()
	idx := make([]int, len(b.data))
	for i := range idx {
		idx[i] = i
	}
	for round := 0; len(idx) > 0; round++ {
		data := b.data
		if len(idx) < len(b.data) {
			data = make([][]byte, len(idx))
			for j, i := range idx {
				data[j] = b.data[i]
			}
		}
		rowErrs, err := t.append(ctx, data)
		if len(rowErrs) > 0 && round == maxRejectRounds {
			if err != nil {
				err = fmt.Errorf("append to %s: rows still rejected after %d rounds: %w", t.name, round, err)
			} else {
				err = fmt.Errorf("append to %s: rows still rejected after %d rounds", t.name, round)
			}
			rowErrs = nil
		}
		if len(rowErrs) == 0 && err == nil {
			t.stored.Add(int64(len(idx)))
			return
		}
		bad, msgs, keep := splitRejected(idx, rowErrs)
		if len(bad) == 0 { // a failure, or row errors with no usable index
			if err == nil { // nothing was stored: never a success
				err = fmt.Errorf("append %d rows to %s: %d row errors name no row of the request", len(idx), t.name, len(rowErrs))
			}
			t.fail(b, idx, err)
			return
		}
		t.w.stats.rowErrors.Add(int64(len(bad)))
		t.reject(ctx, b, bad, msgs)
		idx = keep
	}
}

// fail records err for rows idx of b.
func (t *tableWriter[T]) fail(b *batch[T], idx []int, err error) {
	t.w.stats.failures.Add(1)
	t.w.log.Warn("bigquery append failed", "table", t.name, "rows", len(idx), "error", err)
	if len(idx) == len(b.data) {
		b.err = err
	} else {
		b.setErr(idx, err)
	}
}

// splitRejected separates the batch indices idx of the rows named in
// rowErrs (indices into the request, which held the rows idx) from the
// others.
func splitRejected(idx []int, rowErrs []*storagepb.RowError) (bad []int, msgs []string, keep []int) {
	msg := make(map[int]string, len(rowErrs))
	for _, re := range rowErrs {
		if i := re.GetIndex(); i >= 0 && i < int64(len(idx)) {
			if _, dup := msg[int(i)]; !dup {
				msg[int(i)] = re.GetMessage()
			}
		}
	}
	for j, i := range idx {
		if m, ok := msg[j]; ok {
			bad = append(bad, i)
			msgs = append(msgs, m)
		} else {
			keep = append(keep, i)
		}
	}
	return bad, msgs, keep
}

// append sends one AppendRows request and waits for its result. Row errors
// come back as such (with the request's error); other failures as an error.
// An append that fails before it left (the stream is closed or broken) is
// tried once more, on a new stream.
func (t *tableWriter[T]) append(ctx context.Context, data [][]byte) ([]*storagepb.RowError, error) {
	rowErrs, retry, err := t.appendOnce(ctx, data)
	if retry {
		rowErrs, _, err = t.appendOnce(ctx, data)
	}
	return rowErrs, err
}

func (t *tableWriter[T]) appendOnce(ctx context.Context, data [][]byte) (rowErrs []*storagepb.RowError, retry bool, err error) {
	ref, err := t.stream(ctx)
	if err != nil {
		return nil, false, err
	}
	t.w.stats.appends.Add(1)
	res, err := ref.ms.AppendRows(ctx, data)
	if err != nil {
		ref.users.Done()
		err = fmt.Errorf("append %d rows to %s: %w", len(data), t.name, err)
		if ctx.Err() != nil {
			return nil, false, err
		}
		t.retire(ref, err)
		return nil, true, err
	}
	resp, err := res.FullResponse(ctx)
	// Hold ref until the result is in, even when ctx ended first: a
	// retired stream is closed only when no append is pending on it. Closed
	// under a pending append, the library retries that append on the
	// closed stream for ever (a goroutine and the rows, for the process's
	// life).
	select {
	case <-res.Ready():
		ref.users.Done()
	default:
		go func() { <-res.Ready(); ref.users.Done() }()
	}
	if rowErrs := resp.GetRowErrors(); len(rowErrs) > 0 {
		return rowErrs, false, err
	}
	if err != nil {
		err = fmt.Errorf("append %d rows to %s: %w", len(data), t.name, err)
		if status.Code(err) == codes.NotFound {
			t.lost(ref, err)
		}
		return nil, false, err
	}
	return nil, false, nil
}

// lost handles an append that found no table: deleted, or deleted and
// made again. The next write looks the table up again on a new stream, so
// that a missing table fails as ErrTableNotFound, which says how to make
// it, and a table made again from an old schema fails naming the column.
// The failed append itself is redelivered.
func (t *tableWriter[T]) lost(ref *streamRef, err error) {
	t.checked.Store(false)
	t.retire(ref, err)
}

// stream returns the open default stream, opening it if needed; the caller
// must call users.Done on it.
func (t *tableWriter[T]) stream(ctx context.Context) (*streamRef, error) {
	if ref := t.current(); ref != nil {
		return ref, nil
	}
	select {
	case t.openSem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("open stream to %s: %w", t.name, context.Cause(ctx))
	}
	defer func() { <-t.openSem }()
	if ref := t.current(); ref != nil {
		return ref, nil
	}
	ref, err := t.open(ctx)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.cur = ref
	ref.users.Add(1)
	t.mu.Unlock()
	return ref, nil
}

func (t *tableWriter[T]) current() *streamRef {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cur != nil {
		t.cur.users.Add(1)
	}
	return t.cur
}

// open checks once that the table exists, then opens its default stream.
// The stream outlives ctx, but an open still running when ctx ends is
// abandoned.
func (t *tableWriter[T]) open(ctx context.Context) (*streamRef, error) {
	c, err := t.w.getClients()
	if err != nil {
		return nil, err
	}
	if !t.checked.Load() {
		if err := t.checkTable(ctx, c.bq); err != nil {
			return nil, err
		}
		t.checked.Store(true)
	}
	sctx, cancel := context.WithCancel(t.w.ctx)
	stop := context.AfterFunc(ctx, cancel)
	ms, err := c.mw.NewManagedStream(sctx,
		managedwriter.WithDestinationTable(t.parent),
		managedwriter.WithType(managedwriter.DefaultStream),
		managedwriter.WithSchemaDescriptor(t.schema.Descriptor),
		managedwriter.WithMaxInflightBytes(t.w.cfg.MaxInflightBytes),
		managedwriter.EnableWriteRetries(true))
	if !stop() && err == nil { // ctx ended during the open
		ms.Close()
		err = context.Cause(ctx)
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open stream to %s: %w", t.name, err)
	}
	t.w.stats.opens.Add(1)
	t.w.log.Info("bigquery stream opened", "table", t.name, "stream", ms.StreamName())
	return &streamRef{ms: ms, cancel: cancel}, nil
}

// checkTable looks the table up (tables.get) and checks that it has every
// column of the schema file, so that a missing table or a stale schema is
// reported by name rather than as a failed append. A failure BigQuery may
// not repeat (a 5xx or 429 answer, or no answer) is tried again after
// tableRetry, then twice that, while ctx lasts.
func (t *tableWriter[T]) checkTable(ctx context.Context, bq *bigquery.Service) error {
	call := bq.Tables.Get(t.w.cfg.Project, t.w.cfg.Dataset, t.table).Fields("schema")
	md, err := call.Context(ctx).Do()
	for wait := tableRetry; err != nil && wait <= 2*tableRetry && retryable(err); wait *= 2 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("look up bigquery table %s: %w (then %w)", t.name, err, context.Cause(ctx))
		case <-time.After(wait):
		}
		md, err = call.Context(ctx).Do()
	}
	var gerr *googleapi.Error
	switch {
	case errors.As(err, &gerr) && gerr.Code == http.StatusNotFound:
		return fmt.Errorf("%w: %s (deploy.sh creates it from sink/schema/%s)", ErrTableNotFound, t.name, t.schemaFile)
	case err != nil:
		return fmt.Errorf("look up bigquery table %s: %w", t.name, err)
	}
	have := make(map[string]bool)
	if md.Schema != nil {
		for _, f := range md.Schema.Fields {
			have[strings.ToLower(f.Name)] = true
		}
	}
	for _, c := range t.schema.Columns {
		if !have[strings.ToLower(c.Name)] {
			return fmt.Errorf("bigquery table %s has no column %q: update it from sink/schema/%s", t.name, c.Name, t.schemaFile)
		}
	}
	return nil
}

// tableRetry is checkTable's first wait before trying tables.get again.
const tableRetry = 200 * time.Millisecond

// retryable reports whether a tables.get error may not happen again: an
// answer of 429 or 5xx, or none at all.
func retryable(err error) bool {
	var gerr *googleapi.Error
	if errors.As(err, &gerr) {
		return gerr.Code == http.StatusTooManyRequests || gerr.Code >= 500
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// retire drops a stream whose append failed before reaching BigQuery, or
// found no table, so that the next append opens a new one; it is closed
// when its users are done.
func (t *tableWriter[T]) retire(ref *streamRef, cause error) {
	t.mu.Lock()
	current := t.cur == ref
	if current {
		t.cur = nil
	}
	t.mu.Unlock()
	if !current {
		return
	}
	t.w.log.Warn("bigquery stream broken; reopening on the next write", "table", t.name, "error", cause)
	go func() {
		ref.users.Wait()
		closeRef(ref)
	}()
}

// closeStream closes the current stream, if any. No append may be running.
func (t *tableWriter[T]) closeStream() {
	t.mu.Lock()
	ref := t.cur
	t.cur = nil
	t.mu.Unlock()
	if ref != nil {
		closeRef(ref)
	}
}

// closeRef closes ref's stream. ManagedStream.Close reports io.EOF for a
// normal close, and there is no one to report anything else to.
func closeRef(ref *streamRef) {
	_ = ref.ms.Close()
	ref.cancel()
}
