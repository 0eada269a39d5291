package sink

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/bigquery/storage/managedwriter"
	"github.com/devicestream/enrichevent/enrich"
	"google.golang.org/api/bigquery/v2"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
)

// Defaults of BigQueryConfig.
const (
	DefaultBatchMaxRows  = 500
	DefaultBatchMaxDelay = 5 * time.Millisecond
	DefaultWriteTimeout  = 30 * time.Second
	// DefaultMaxInflightBytes bounds the rows a table's stream holds for
	// appends not yet answered: those of callers that gave up
	// (WriteTimeout) included, which are otherwise held for as long as
	// BigQuery takes to answer. Three of the largest appends.
	DefaultMaxInflightBytes = 32 << 20

	// maxBatchBytes bounds the serialized rows of one append, under the
	// Storage Write API's 10 MB request limit.
	maxBatchBytes = 9_000_000
)

// BigQueryConfig configures a BigQuery sink. Zero values mean the defaults.
type BigQueryConfig struct {
	Project, Dataset, Table string // the rows table; required

	ErrorTable    string        // error-records table in the same dataset; default Table+"_error_records"
	BatchMaxRows  int           // rows per append at most; default 500
	BatchMaxDelay time.Duration // how long a batch collects rows under load; default 5ms
	WriteTimeout  time.Duration // bound of every batch's appends from when it opened, so of every WriteRows/WriteErrors call; default 30s
	// MaxInflightBytes bounds the bytes of a stream's unanswered appends;
	// an append waits (within WriteTimeout) until it fits, or is sent
	// alone. Default DefaultMaxInflightBytes.
	MaxInflightBytes int

	// ClientOptions are passed to both the BigQuery (REST) and the Storage
	// Write API (gRPC) clients, after the endpoint options below.
	ClientOptions []option.ClientOption
	// RESTEndpoint, if set (BIGQUERY_EMULATOR_HOST: host:port or
	// http://host:port), receives tables.get, without authentication.
	RESTEndpoint string
	// GRPCEndpoint, if set (BIGQUERY_STORAGE_EMULATOR_HOST: host:port),
	// receives the Storage Write API calls, without authentication or TLS.
	GRPCEndpoint string

	Logger *slog.Logger     // nil means slog.Default()
	Now    func() time.Time // timestamps of error records; nil means time.Now

	// keepalive is the Storage Write connection's; zero means
	// grpcKeepalive. Tests shorten it.
	keepalive keepalive.ClientParameters
}

// BigQuery is a Sink that streams rows to a BigQuery table, and error
// records to its error-records table, through the default streams of the
// Storage Write API. It is safe for concurrent use; keep one for the
// process. See the package documentation for the write path.
type BigQuery struct {
	cfg    BigQueryConfig
	log    *slog.Logger
	ctx    context.Context // lives until Close: clients and streams
	cancel context.CancelFunc

	rows   *tableWriter[enrich.Row]
	errs   *tableWriter[enrich.ErrorRecord]
	rowEnc *rowEncoder
	errEnc *errorEncoder

	clientMu    sync.Mutex
	clients     *clients
	clientsDone bool // closed by Close: no new clients

	closed atomic.Bool
	stats  struct{ appends, failures, rowErrors, opens atomic.Int64 }
}

type clients struct {
	bq *bigquery.Service // REST: tables.get
	mw *managedwriter.Client
}

// BigQueryStats counts the work of a BigQuery sink since it was made.
type BigQueryStats struct {
	Appends        int64 // AppendRows requests on both tables, re-appends after row errors included
	AppendFailures int64 // appends that failed as a whole: their callers got an error
	Rows           int64 // rows stored in the rows table
	ErrorRecords   int64 // records stored in the error-records table
	RowErrors      int64 // rows (and records) BigQuery rejected one by one
	StreamOpens    int64 // default streams opened: first opens and reopens
	PendingRows    int64 // rows and records queued or in flight now
}

var _ Sink = (*BigQuery)(nil)

// NewBigQuery returns a BigQuery sink. It does no I/O: the clients and the
// streams are opened by the first write, which also checks that the table
// exists.
func NewBigQuery(ctx context.Context, cfg BigQueryConfig) (*BigQuery, error) {
	if cfg.Project == "" || cfg.Dataset == "" || cfg.Table == "" {
		return nil, fmt.Errorf("bigquery sink: project, dataset and table are required, got %q.%q.%q",
			cfg.Project, cfg.Dataset, cfg.Table)
	}
	cfg.ErrorTable = cmp.Or(cfg.ErrorTable, cfg.Table+"_error_records")
	if cfg.ErrorTable == cfg.Table {
		return nil, fmt.Errorf("bigquery sink: error table %q is the rows table", cfg.ErrorTable)
	}
	cfg.BatchMaxRows = cmp.Or(max(cfg.BatchMaxRows, 0), DefaultBatchMaxRows)
	cfg.BatchMaxDelay = cmp.Or(max(cfg.BatchMaxDelay, 0), DefaultBatchMaxDelay)
	cfg.WriteTimeout = cmp.Or(max(cfg.WriteTimeout, 0), DefaultWriteTimeout)
	cfg.MaxInflightBytes = cmp.Or(max(cfg.MaxInflightBytes, 0), DefaultMaxInflightBytes)
	cfg.keepalive = cmp.Or(cfg.keepalive, grpcKeepalive)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	rowsSchema, err := RowsSchema()
	if err != nil {
		return nil, err
	}
	errSchema, err := ErrorRecordsSchema()
	if err != nil {
		return nil, err
	}
	w := &BigQuery{cfg: cfg, log: cfg.Logger}
	if w.rowEnc, err = newRowEncoder(rowsSchema.Message); err != nil {
		return nil, err
	}
	if w.errEnc, err = newErrorEncoder(errSchema.Message); err != nil {
		return nil, err
	}
	w.ctx, w.cancel = context.WithCancel(context.WithoutCancel(ctx))
	w.rows = newTableWriter(w, cfg.Table, "rows.json", rowsSchema, w.rejectRows)
	w.errs = newTableWriter(w, cfg.ErrorTable, "error_records.json", errSchema, rejectErrorRecords)
	return w, nil
}

// WriteRows stores rows in the rows table. It returns when the appends
// holding them are acknowledged or have failed (within WriteTimeout of the
// call: see batch.opened), or when ctx is done: nil if every row is stored,
// or was rejected by BigQuery and stored as an error record instead; an
// error otherwise, and then some rows may be stored anyway (redelivery
// makes duplicates, which the dedup view removes).
func (w *BigQuery) WriteRows(ctx context.Context, rows []enrich.Row) error {
	if len(rows) == 0 {
		return nil
	}
	data := make([][]byte, 0, len(rows))
	items := make([]enrich.Row, 0, len(rows))
	var oversize []enrich.ErrorRecord
	for i := range rows {
		d := w.rowEnc.encode(&rows[i])
		if len(d) > maxBatchBytes {
			msg := fmt.Sprintf("row is %d bytes, over the %d-byte limit of one append", len(d), maxBatchBytes)
			oversize = append(oversize, w.rowErrorRecord(&rows[i], msg))
			continue
		}
		data = append(data, d)
		items = append(items, rows[i])
	}
	spans, err := w.rows.batcher.add(data, items)
	if err != nil {
		return err
	}
	var recErr error
	if len(oversize) > 0 {
		recErr = w.WriteErrors(ctx, oversize)
	}
	return errors.Join(wait(ctx, w.rows.name, spans), recErr)
}

// WriteErrors stores records in the error-records table. A record with a
// zero Timestamp gets the current time.
func (w *BigQuery) WriteErrors(ctx context.Context, recs []enrich.ErrorRecord) error {
	if len(recs) == 0 {
		return nil
	}
	data := make([][]byte, len(recs))
	items := make([]enrich.ErrorRecord, len(recs))
	for i, r := range recs {
		if r.Timestamp.IsZero() {
			r.Timestamp = w.cfg.Now()
		}
		var d []byte
		text := payloadText(r.Payload)
		if over := w.errEnc.size(&r, len(text)) - maxBatchBytes; over > 0 {
			r, d = w.fitErrorRecord(r, text, over)
		} else {
			d = w.errEnc.encode(&r, text)
		}
		data[i], items[i] = d, r
	}
	spans, err := w.errs.batcher.add(data, items)
	if err != nil {
		return err
	}
	return wait(ctx, w.errs.name, spans)
}

// fitErrorRecord makes r fit one append when its encoding is over bytes
// too large. The payload is written twice: its text (payloadString) is cut
// first, so that payloadBytes keeps the exact bytes whenever they fit on
// their own (a payload of up to about 9 MB); only past that is the payload
// itself cut. The error message says what was cut. text is
// payloadText(r.Payload).
func (w *BigQuery) fitErrorRecord(r enrich.ErrorRecord, text []byte, over int) (enrich.ErrorRecord, []byte) {
	const slack = 1024 // for the note added to the message
	if bounded, note := boundToPubSub(r); note != "" {
		// Only a forged request carries more than Pub/Sub allows; what
		// Pub/Sub allows always fits beside the payload.
		r = bounded
		r.ErrorMessage += note
		if over = w.errEnc.size(&r, len(text)) - maxBatchBytes; over <= 0 {
			return r, w.errEnc.encode(&r, text)
		}
	}
	if len(text) >= over+slack {
		keep := len(text) - over - slack
		r.ErrorMessage += fmt.Sprintf(" (payloadString cut from %d to at most %d bytes to fit one append; payloadBytes holds the whole payload)", len(text), keep)
		return r, w.errEnc.encode(&r, cutText(text, keep))
	}
	// Cutting the payload shrinks both copies when its text is the payload
	// itself. A payload that is mostly not UTF-8 has a much shorter text
	// (a run of invalid bytes is one U+FFFD), so its bytes alone must
	// shrink by what is still over.
	n := len(r.Payload)
	payload := r.Payload
	r.Payload = payload[:max(n-over/2-slack, 0)]
	text = payloadText(r.Payload)
	if still := w.errEnc.size(&r, len(text)) - maxBatchBytes; still > 0 {
		r.Payload = payload[:max(len(r.Payload)-still-slack, 0)]
		text = payloadText(r.Payload)
	}
	r.ErrorMessage += fmt.Sprintf(" (payload truncated from %d to %d bytes to fit one append)", n, len(r.Payload))
	return r, w.errEnc.encode(&r, text)
}

// What one Pub/Sub message can carry besides its data: attributes (at
// most 100, keys of at most 256 bytes, values of at most 1,024), a message
// id, and the subscription's name. An error record holds no more of them.
const (
	maxAttributes     = 100
	maxAttributeKey   = 256
	maxAttributeValue = 1024
	maxNameBytes      = 1024 // message id, subscription
)

// boundToPubSub returns r with its attributes, message id and
// subscription cut to what a message through Pub/Sub can carry (the
// attributes that sort first are kept), and a note for the error message
// that says what was cut; the note is empty, and r unchanged, when nothing
// was over. A forged push envelope can be made of megabytes of attributes,
// whose error record would never fit one append.
func boundToPubSub(r enrich.ErrorRecord) (enrich.ErrorRecord, string) {
	var cut []string
	if len(r.MessageID) > maxNameBytes {
		r.MessageID = cutText(r.MessageID, maxNameBytes)
		cut = append(cut, "message id")
	}
	if len(r.Subscription) > maxNameBytes {
		r.Subscription = cutText(r.Subscription, maxNameBytes)
		cut = append(cut, "subscription")
	}
	over := len(r.Attributes) > maxAttributes
	for k, v := range r.Attributes {
		over = over || len(k) > maxAttributeKey || len(v) > maxAttributeValue
	}
	if over {
		keys := slices.Sorted(maps.Keys(r.Attributes))
		attrs := make(map[string]string, min(len(keys), maxAttributes))
		for _, k := range keys[:min(len(keys), maxAttributes)] {
			attrs[cutText(k, maxAttributeKey)] = cutText(r.Attributes[k], maxAttributeValue)
		}
		cut = append(cut, fmt.Sprintf("attributes (%d, cut to %d)", len(r.Attributes), len(attrs)))
		r.Attributes = attrs
	}
	if len(cut) == 0 {
		return r, ""
	}
	return r, fmt.Sprintf(" (%s cut to Pub/Sub's limits to fit one append)", strings.Join(cut, ", "))
}

// rejectRows stores the rows BigQuery rejected as error records; their
// callers succeed only if that works.
func (w *BigQuery) rejectRows(ctx context.Context, b *batch[enrich.Row], idx []int, msgs []string) {
	recs := make([]enrich.ErrorRecord, len(idx))
	for j, i := range idx {
		recs[j] = w.rowErrorRecord(&b.items[i], msgs[j])
	}
	err := w.WriteErrors(ctx, recs)
	w.log.Warn("bigquery rejected rows; storing them as error records",
		"table", w.rows.name, "rows", len(idx), "message_id", recs[0].MessageID,
		"error", msgs[0], "error_table_error", err)
	if err != nil {
		b.setErr(idx, fmt.Errorf("store %d rejected rows in %s: %w", len(idx), w.errs.name, err))
	}
}

// rejectErrorRecords fails the callers of error records that BigQuery
// rejected: there is nowhere else to put them.
func rejectErrorRecords(_ context.Context, b *batch[enrich.ErrorRecord], idx []int, msgs []string) {
	for j, i := range idx {
		b.setErr(idx[j:j+1], fmt.Errorf("bigquery rejected the error record of message %q: %s",
			b.items[i].MessageID, msgs[j]))
	}
}

// rowErrorRecord is the error record of a row that BigQuery rejected.
func (w *BigQuery) rowErrorRecord(r *enrich.Row, msg string) enrich.ErrorRecord {
	var attrs map[string]string
	if len(r.Attributes) > 0 {
		_ = json.Unmarshal(r.Attributes, &attrs) // best effort: the payload is what matters
	}
	return enrich.ErrorRecord{
		Timestamp:    w.cfg.Now(),
		Payload:      r.Payload,
		Attributes:   attrs,
		MessageID:    r.MessageID,
		Subscription: r.Subscription,
		Reason:       enrich.ReasonBigQueryRowError,
		ErrorMessage: fmt.Sprintf("bigquery rejected the row for %s: %s", w.rows.name, msg),
	}
}

// Stats returns the sink's counters.
func (w *BigQuery) Stats() BigQueryStats {
	return BigQueryStats{
		Appends:        w.stats.appends.Load(),
		AppendFailures: w.stats.failures.Load(),
		Rows:           w.rows.stored.Load(),
		ErrorRecords:   w.errs.stored.Load(),
		RowErrors:      w.stats.rowErrors.Load(),
		StreamOpens:    w.stats.opens.Load(),
		PendingRows:    w.rows.batcher.pending.Load() + w.errs.batcher.pending.Load(),
	}
}

// Close sends the rows already queued, waits for the appends in flight
// (each bounded by WriteTimeout), then closes the streams and clients.
// Writes after Close return ErrClosed.
func (w *BigQuery) Close() error {
	if !w.closed.CompareAndSwap(false, true) {
		return nil
	}
	w.rows.batcher.close() // before errs: rejected rows go to the error table
	w.errs.batcher.close()
	w.rows.closeStream()
	w.errs.closeStream()
	w.clientMu.Lock()
	c := w.clients
	w.clients, w.clientsDone = nil, true
	w.clientMu.Unlock()
	var errs []error
	if c != nil {
		errs = append(errs, c.mw.Close()) // the REST service has nothing to close
	}
	w.cancel()
	return errors.Join(errs...)
}

// grpcKeepalive makes the Storage Write connection ping BigQuery after 30 s
// without a frame from it (the shortest interval Google's front ends
// accept; Google's Bigtable clients use the same), and close the
// connection if the ping is not answered within 10 s. The library then
// sends its unanswered appends again on a new connection. Without it, a
// connection that stays open but answers nothing (a dead NAT mapping, a
// hung front end) lasts until TCP gives up, about 15 minutes, and every
// write times out meanwhile. No pings while no stream is open.
var grpcKeepalive = keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}

// getClients makes the two clients on first use. They dial lazily: no I/O.
func (w *BigQuery) getClients() (*clients, error) {
	w.clientMu.Lock()
	defer w.clientMu.Unlock()
	if w.clientsDone {
		return nil, ErrClosed
	}
	if w.clients != nil {
		return w.clients, nil
	}
	var restOpts, grpcOpts []option.ClientOption
	if e := w.cfg.RESTEndpoint; e != "" {
		if !strings.Contains(e, "://") {
			e = "http://" + e
		}
		restOpts = append(restOpts, option.WithEndpoint(e), option.WithoutAuthentication())
	}
	if e := w.cfg.GRPCEndpoint; e != "" {
		e = strings.TrimPrefix(strings.TrimPrefix(e, "http://"), "https://")
		grpcOpts = append(grpcOpts, option.WithEndpoint(e), option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	}
	restOpts = append([]option.ClientOption{option.WithScopes(bigquery.BigqueryScope)}, restOpts...)
	bq, err := bigquery.NewService(w.ctx, append(restOpts, w.cfg.ClientOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("bigquery client: %w", err)
	}
	grpcOpts = append(grpcOpts, option.WithGRPCDialOption(grpc.WithKeepaliveParams(w.cfg.keepalive)))
	mw, err := managedwriter.NewClient(w.ctx, w.cfg.Project, append(grpcOpts, w.cfg.ClientOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("bigquery storage write client: %w", err)
	}
	w.clients = &clients{bq: bq, mw: mw}
	return w.clients, nil
}
