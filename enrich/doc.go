// Package enrich turns a Pub/Sub message into an enriched row: it decodes the
// message, extracts the device id and event time from the payload, joins the
// device's metadata and builds the row. It also parses the device metadata
// file into an immutable Devices table.
//
// Everything here is pure: no I/O beyond the io.Reader it is handed, no
// globals, no logging. Values are safe for concurrent reads once built.
package enrich
