// Package enrich turns a Pub/Sub message into an enriched row: it decodes the
// message (DecodePush), checks the payload and extracts the device id and
// event time (Options.ParseEvent), joins the device's metadata and builds the
// row (BuildRow), or the error record of a message that can never become a
// row (NewErrorRecord). It also parses the device metadata file, CSV, JSON or
// NDJSON, optionally gzipped, into an immutable Devices table
// (ParseMetadata).
//
// Everything here is pure: no I/O beyond the io.Reader it is handed, no
// globals, no logging. Values are safe for concurrent reads once built.
//
// The hot path does not decode the payload into Go values: it validates it
// in one pass and reads the two top-level fields it needs; FuzzDecode holds
// that to encoding/json. A Devices table stores each device's metadata JSON
// and strings in shared blocks, with no per-device allocation, and looks
// devices up without allocating. bench_test.go measures both.
package enrich
