// Package sink writes enriched rows and error records: to stdout as JSON
// lines for local runs (Stdout), or to BigQuery through the Storage Write
// API (BigQuery).
//
// Every Sink is safe for concurrent use by many invocations at once.
//
// # BigQuery write path
//
// The table schemas are the JSON files in sink/schema, embedded and parsed
// by RowsSchema and ErrorRecordsSchema; the writer sends the proto2
// descriptor derived from them (what managedwriter/adapt derives, without
// importing it: see descriptorFor) and encodes rows with protowire against
// its field numbers.
//
// One BigQuery value per process holds a managedwriter client and, per
// table, one default stream, opened by the first write after a tables.get
// check (with the REST client of google.golang.org/api/bigquery/v2, 503s
// and 429s tried again twice) and reused; write retries are enabled, and a
// stream whose append fails before reaching BigQuery is replaced on the
// next write.
//
// Rows from concurrent calls are coalesced: a row goes out at once when no
// append is in flight; otherwise it joins the open batch, sent when it
// reaches BatchMaxRows or 9 MB, after BatchMaxDelay, or as soon as nothing
// is in flight, whichever is first. Each caller waits for the appends that
// hold its rows, bounded by its context and by WriteTimeout, which a
// batch's appends get from when the batch opened: one timer per batch, none
// per call.
//
// BigQuery answers a request with bad rows with row errors and stores
// nothing; those rows become error records (reason bigquery_row_error,
// BigQuery's message, the row's payload and attributes) in the error table,
// the others are appended again, and each caller's result is that of its
// own rows. A row too large for one append becomes an error record too.
// Any other failure (unavailable, deadline, broken stream) is returned, so
// that Pub/Sub redelivers: the default stream is at-least-once, deduplicate
// on message_id downstream.
package sink

import (
	"context"

	"github.com/devicestream/enrichevent/enrich"
)

// Sink stores rows and error records. A nil error means every row and record
// is stored durably (or, for a row the destination rejected, stored as an
// error record instead); any error means the caller must not acknowledge
// the message, so that Pub/Sub redelivers it. A sink does not keep the
// slices it is given once the call returns (callers reuse them); it may keep
// copies of their elements.
type Sink interface {
	WriteRows(ctx context.Context, rows []enrich.Row) error
	WriteErrors(ctx context.Context, recs []enrich.ErrorRecord) error
}
