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
// in one pass and reads the two top-level fields it needs. DecodePush reads
// the envelope with one validating scan and falls back to encoding/json for
// anything the scan does not decode exactly as encoding/json would
// (decode_fast.go); FuzzDecode and FuzzDecodePush hold both to
// encoding/json. A Devices table stores each device's metadata JSON in
// shared blocks and locates its fields by offsets: no per-device allocation
// and no pointers for the garbage collector to trace; Lookup builds the
// Device without allocating. bench_test.go measures all of it.
package enrich
