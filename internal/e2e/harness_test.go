package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/devicestream/enrichevent/internal/bqfake"
	"github.com/devicestream/enrichevent/sink"
)

// Settings shared by every scenario.
const (
	project         = "e2e-project"
	bucket          = "e2e-metadata"
	rowsTable       = "events"
	errorsTable     = "events_error_records" // the sink's default: BQ_TABLE + "_error_records"
	metadataTTL     = 2 * time.Second
	bqWriteTimeout  = 3 * time.Second
	maxPayloadBytes = 64 << 10
	// settleTimeout bounds every wait for messages to be accounted for.
	settleTimeout = 60 * time.Second
)

// functionBinary is the function built by TestMain; buildErr is why not.
var (
	functionBinary string
	buildErr       error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "enrichfn-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	functionBinary, buildErr = buildCommand(dir, "./cmd")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// harness is everything the scenarios share: the function binary, one
// Pub/Sub emulator, one GCS and one BigQuery fake.
type harness struct {
	bin     string
	project string
	emu     *emulator
	gcs     *gcs
	bq      *bqfake.Server
	rows    *sink.TableSchema
	errs    *sink.TableSchema
}

// newHarness starts the shared servers; they stop when t ends. Without
// Java or the Pub/Sub emulator it skips t, or fails it under CI=true.
func newHarness(t *testing.T) *harness {
	t.Helper()
	statSources()
	if buildErr != nil {
		t.Fatalf("build the function: %v", buildErr)
	}
	h := &harness{bin: functionBinary, project: project}
	var err error
	if h.rows, err = sink.RowsSchema(); err != nil {
		t.Fatal(err)
	}
	if h.errs, err = sink.ErrorRecordsSchema(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), emulatorStartTimeout+30*time.Second)
	defer cancel()
	h.emu, err = startEmulator(ctx, project)
	if errors.Is(err, errMissing) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and the Pub/Sub emulator cannot run: %v", err)
		}
		t.Skipf("skipping the end-to-end tests: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.emu.close)
	if h.gcs, err = startGCS(bucket); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.gcs.close)
	if h.bq, err = bqfake.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.bq.Close)
	return h
}

// scenario is one subtest's own world: a dataset with both tables, a
// metadata object, a topic with its push subscription, the function
// processes it started, and what it published.
type scenario struct {
	t       *testing.T
	h       *harness
	name    string
	dataset string
	object  string
	sub     *pushSubscription
	fns     []*fnProcess
	sent    *ledger
	// expect maps each metadata generation uploaded to its content, to
	// check every row's enrichment against the version it names.
	expect map[int64]metadata
}

// newScenario prepares scenario name: its dataset with both tables, and
// the name of its metadata object. When t ends, the scenario prints its
// summary line, fails if a message is lost, and dumps the function's logs
// if t failed.
func (h *harness) newScenario(t *testing.T, name string) *scenario {
	s := &scenario{
		t: t, h: h, name: name,
		dataset: name,
		object:  name + "/devices.csv",
		sent:    newLedger(),
		expect:  make(map[int64]metadata),
	}
	for table, schema := range map[string]*sink.TableSchema{rowsTable: h.rows, errorsTable: h.errs} {
		if err := h.bq.AddTableJSON(h.project, s.dataset, table, schema.JSON); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(s.finish)
	return s
}

// upload replaces the metadata object with good content m and returns its
// generation.
func (s *scenario) upload(m metadata) int64 {
	s.t.Helper()
	gen := s.uploadRaw(m.csv())
	s.expect[gen] = m
	return gen
}

// uploadRaw replaces the metadata object with data and returns its
// generation.
func (s *scenario) uploadRaw(data []byte) int64 {
	s.t.Helper()
	gen, err := s.h.gcs.put(s.object, data)
	if err != nil {
		s.t.Fatal(err)
	}
	return gen
}

// subscribe creates the scenario's topic and push subscription to the
// function listening on port.
func (s *scenario) subscribe(port int) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub, err := s.h.emu.createPush(ctx, s.name, port)
	if err != nil {
		s.t.Fatal(err)
	}
	s.sub = sub
	s.t.Cleanup(sub.publisher.Stop)
}

// finish runs when the subtest ends: it counts once more, prints the
// summary line, and checks that nothing is lost. The function's logs are
// dumped if the test failed, or always with E2E_LOGS=1.
func (s *scenario) finish() {
	t := s.t
	for _, f := range s.fns {
		f.kill()
		f.checkRaces(t)
	}
	tl := s.count()
	if t.Failed() || os.Getenv("E2E_LOGS") == "1" {
		s.dumpLogs()
	}
	t.Logf("scenario=%s published=%d rows=%d error_records=%d duplicates=%d lost=%d",
		s.name, tl.published, tl.rows, tl.errorRecords, tl.duplicates, tl.lost)
	if tl.lost != 0 {
		t.Errorf("%d of %d messages lost (neither a row nor an error record), e.g. %v", tl.lost, tl.published, tl.lostIDs)
	}
}

// dumpLogs logs every function process's output.
func (s *scenario) dumpLogs() {
	for _, f := range s.fns {
		s.t.Logf("--- %s stderr:\n%s", f.name, f.stderr)
		if out := f.stdout.String(); out != "" {
			s.t.Logf("--- %s stdout:\n%s", f.name, out)
		}
	}
}

// logCount counts the log lines with message msg (and severity, unless "")
// of every function process of the scenario.
func (s *scenario) logCount(msg, severity string) int {
	n := 0
	for _, f := range s.fns {
		n += f.log().count(msg, severity)
	}
	return n
}

// logLines returns the JSON log lines of every function process.
func (s *scenario) logLines() []logLine {
	var out []logLine
	for _, f := range s.fns {
		out = append(out, f.log().jsonLines()...)
	}
	return out
}
