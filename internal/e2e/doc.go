// Package e2e holds the end-to-end reliability tests of EnrichEvent (issue
// 4). It has no code of its own outside its tests: run it with
//
//	go test -race -run TestReliability -v ./internal/e2e/
//
// The tests build the function from ./cmd, run it as a separate process
// configured only through its environment variables, and drive it through
// a real Pub/Sub push subscription of the Pub/Sub emulator that ships with
// the gcloud CLI. The metadata file is served by fake-gcs-server behind a
// front that can fail, and rows land in the in-process BigQuery fake
// (internal/bqfake). Each scenario injects one fault and proves that every
// published message ends up exactly where it should: as a row or as an
// error record, never lost. See RELIABILITY.md at the repository root.
//
// Without Java or the gcloud CLI's Pub/Sub emulator the tests skip, except
// under CI=true, where they fail naming what is missing.
package e2e
