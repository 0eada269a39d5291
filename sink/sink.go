// Package sink writes enriched rows and error records: to stdout as JSON
// lines for local runs, or to BigQuery through the Storage Write API.
//
// Every Sink is safe for concurrent use by many invocations at once.
package sink

import (
	"context"

	"github.com/devicestream/enrichevent/enrich"
)

// Sink stores rows and error records. A nil error means every row and record
// is stored durably (or, for a row the destination rejected, stored as an
// error record instead); any error means the caller must not acknowledge
// the message, so that Pub/Sub redelivers it.
type Sink interface {
	WriteRows(ctx context.Context, rows []enrich.Row) error
	WriteErrors(ctx context.Context, recs []enrich.ErrorRecord) error
}
