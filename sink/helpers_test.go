package sink

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/devicestream/enrichevent/enrich"
	"github.com/devicestream/enrichevent/internal/bqfake"
)

const testProject, testDataset, testTable = "proj", "ds", "events"

const testErrorTable = testTable + "_error_records"

// env is a BigQuery sink writing, through the official clients, into a
// fake BigQuery that holds both tables.
type env struct {
	fake *bqfake.Server
	w    *BigQuery
}

// newEnv starts a fake with both tables (unless tables says otherwise) and
// a sink configured by cfg, with the fake's endpoints filled in.
func newEnv(tb testing.TB, cfg BigQueryConfig) *env {
	tb.Helper()
	fake, err := bqfake.Start()
	if err != nil {
		tb.Fatalf("bqfake.Start: %v", err)
	}
	tb.Cleanup(fake.Close)
	addTables(tb, fake)
	return &env{fake: fake, w: newSink(tb, fake, cfg)}
}

// addTables adds the rows and the error-records tables to fake.
func addTables(tb testing.TB, fake *bqfake.Server) {
	tb.Helper()
	rows, err := RowsSchema()
	if err != nil {
		tb.Fatal(err)
	}
	errs, err := ErrorRecordsSchema()
	if err != nil {
		tb.Fatal(err)
	}
	for table, schema := range map[string]*TableSchema{testTable: rows, testErrorTable: errs} {
		if err := fake.AddTableJSON(testProject, testDataset, table, schema.JSON); err != nil {
			tb.Fatal(err)
		}
	}
}

// newSink makes a sink of the tables in fake, through cfg.GRPCEndpoint
// when it is set (a proxy in front of the fake), and closes it when tb ends.
func newSink(tb testing.TB, fake *bqfake.Server, cfg BigQueryConfig) *BigQuery {
	tb.Helper()
	cfg.Project, cfg.Dataset = testProject, testDataset
	if cfg.Table == "" {
		cfg.Table = testTable
	}
	cfg.RESTEndpoint = fake.RESTEndpoint()
	cfg.GRPCEndpoint = cmp.Or(cfg.GRPCEndpoint, fake.GRPCAddr())
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	w, err := NewBigQuery(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("NewBigQuery: %v", err)
	}
	tb.Cleanup(func() {
		if err := w.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return w
}

func (e *env) rows() []map[string]any {
	return e.fake.Rows(testProject, testDataset, testTable)
}

func (e *env) errorRecords() []map[string]any {
	return e.fake.Rows(testProject, testDataset, testErrorTable)
}

// sampleRow is a row with every column set; message id "m<i>".
func sampleRow(i int) enrich.Row {
	t0 := time.Date(2026, 11, 3, 10, 4, 5, 123456000, time.UTC)
	return enrich.Row{
		MessageID:        fmt.Sprintf("m%d", i),
		Subscription:     "projects/p/subscriptions/s",
		PublishTime:      t0,
		EventTime:        t0.Add(-time.Second),
		DeviceID:         "dev-7",
		DeviceFound:      true,
		AssetTag:         "AT-7",
		LocationID:       "loc-1",
		TenantName:       "Acme",
		DeviceMetadata:   json.RawMessage(`{"asset_tag":"AT-7","floor":3}`),
		Payload:          json.RawMessage(`{"device_id":"dev-7","temp":21.5}`),
		Attributes:       json.RawMessage(`{"origin":"edge"}`),
		MetadataVersion:  1730000000000000,
		MetadataLoadedAt: t0.Add(-time.Hour),
		IngestTime:       t0.Add(time.Second),
	}
}

// waitFor polls cond until it holds; the test's deadline bounds it.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
