package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"cloud.google.com/go/bigquery"
	"github.com/devicestream/enrichevent/enrich"
	"github.com/devicestream/enrichevent/internal/bqfake"
	"github.com/devicestream/enrichevent/internal/tcpproxy"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
)

func TestBigQueryRowColumns(t *testing.T) {
	e := newEnv(t, BigQueryConfig{})
	full := sampleRow(1)
	sparse := enrich.Row{ // nullable columns at their zero values
		MessageID:   "m2",
		PublishTime: full.PublishTime,
		EventTime:   full.EventTime,
		DeviceID:    "dev-\xff", // invalid UTF-8 in a STRING column is replaced, not rejected
		Payload:     json.RawMessage(`{}`),
		IngestTime:  full.IngestTime,
	}
	if err := e.w.WriteRows(context.Background(), []enrich.Row{full, sparse}); err != nil {
		t.Fatalf("WriteRows: %v", err)
	}
	got := e.rows()
	if len(got) != 2 {
		t.Fatalf("rows table has %d rows, want 2", len(got))
	}
	want := []map[string]any{{
		"message_id":         "m1",
		"subscription":       "projects/p/subscriptions/s",
		"publish_time":       full.PublishTime,
		"event_time":         full.EventTime,
		"device_id":          "dev-7",
		"device_found":       true,
		"asset_tag":          "AT-7",
		"location_id":        "loc-1",
		"tenant_name":        "Acme",
		"device_metadata":    `{"asset_tag":"AT-7","floor":3}`,
		"payload":            `{"device_id":"dev-7","temp":21.5}`,
		"attributes":         `{"origin":"edge"}`,
		"metadata_version":   int64(1730000000000000),
		"metadata_loaded_at": full.MetadataLoadedAt,
		"ingest_time":        full.IngestTime,
	}, {
		"message_id":       "m2",
		"publish_time":     full.PublishTime,
		"event_time":       full.EventTime,
		"device_id":        "dev-\uFFFD",
		"device_found":     false,
		"payload":          `{}`,
		"metadata_version": int64(0),
		"ingest_time":      full.IngestTime,
	}}
	schema, _ := RowsSchema()
	if len(want[0]) != len(schema.Columns) {
		t.Fatalf("test covers %d columns, the schema has %d", len(want[0]), len(schema.Columns))
	}
	for i := range want {
		for col, w := range want[i] {
			if g := got[i][col]; g != w {
				t.Errorf("row %d column %s = %#v (%T), want %#v (%T)", i, col, g, g, w, w)
			}
		}
		for col, g := range got[i] {
			if _, ok := want[i][col]; !ok {
				t.Errorf("row %d column %s = %#v, want NULL", i, col, g)
			}
		}
	}
	if s := e.w.Stats(); s.Rows != 2 || s.Appends != 1 || s.StreamOpens != 1 {
		t.Errorf("Stats() = %+v, want 2 rows in 1 append on 1 stream", s)
	}
}

func TestBigQueryErrorRecordColumns(t *testing.T) {
	now := time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC)
	e := newEnv(t, BigQueryConfig{Now: func() time.Time { return now }})
	recs := []enrich.ErrorRecord{{
		Payload:      []byte("{not json \xff"),
		Attributes:   map[string]string{"b": "2", "a": "1"},
		MessageID:    "m9",
		Subscription: "projects/p/subscriptions/s",
		Reason:       enrich.ReasonInvalidJSON,
		ErrorMessage: "invalid_json: unexpected end",
	}, {
		Timestamp: now.Add(-time.Minute),
		Payload:   nil, // the REQUIRED payload columns are still written, empty
		Reason:    enrich.ReasonInvalidEnvelope,
	}}
	if err := e.w.WriteErrors(context.Background(), recs); err != nil {
		t.Fatalf("WriteErrors: %v", err)
	}
	got := e.errorRecords()
	if len(got) != 2 {
		t.Fatalf("error table has %d rows, want 2", len(got))
	}
	r := got[0]
	checks := []struct {
		col       string
		got, want any
	}{
		{"timestamp", r["timestamp"], now},
		{"payloadString", r["payloadString"], "{not json \uFFFD"},
		{"payloadBytes", string(r["payloadBytes"].([]byte)), "{not json \xff"},
		{"attributes", fmt.Sprint(r["attributes"]), "[map[key:a value:1] map[key:b value:2]]"},
		{"errorMessage", r["errorMessage"], "invalid_json: unexpected end"},
		{"message_id", r["message_id"], "m9"},
		{"subscription", r["subscription"], "projects/p/subscriptions/s"},
		{"reason", r["reason"], "invalid_json"},
		{"stacktrace", r["stacktrace"], nil},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("record column %s = %#v, want %#v", c.col, c.got, c.want)
		}
	}
	r = got[1]
	if r["timestamp"] != now.Add(-time.Minute) || r["payloadString"] != "" || len(r["payloadBytes"].([]byte)) != 0 ||
		r["reason"] != "invalid_envelope" || len(r["attributes"].([]any)) != 0 {
		t.Errorf("second record = %v, want its own timestamp, empty payloads and no attributes", r)
	}
}

// TestBigQueryRowErrorsWithoutRows: an answer whose row errors name no row
// of the request, without an error status, stored nothing. No documented
// server sends one; the writer must not take it for success.
func TestBigQueryRowErrorsWithoutRows(t *testing.T) {
	e := newEnv(t, BigQueryConfig{})
	e.fake.MisnumberNextRowErrors(1)
	bad := sampleRow(2)
	bad.Payload = json.RawMessage(`{"a":`)
	err := e.w.WriteRows(context.Background(), []enrich.Row{sampleRow(1), bad})
	if err == nil || !strings.Contains(err.Error(), "name no row") {
		t.Fatalf("WriteRows answered with misnumbered row errors = %v, want an error", err)
	}
	if n, m := len(e.rows()), len(e.errorRecords()); n != 0 || m != 0 {
		t.Errorf("stored %d rows and %d error records, want none", n, m)
	}
}

func TestBigQueryRowErrors(t *testing.T) {
	tests := []struct {
		name string
		bad  func(*enrich.Row)
		want string // in the error record's errorMessage
	}{
		{"event time in year 12000", func(r *enrich.Row) { r.EventTime = time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC) }, "out of range"},
		{"payload not JSON", func(r *enrich.Row) { r.Payload = json.RawMessage(`{"a":`) }, "Invalid JSON"},
		{"payload empty", func(r *enrich.Row) { r.Payload = nil }, "Invalid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, BigQueryConfig{})
			rows := []enrich.Row{sampleRow(1), sampleRow(2), sampleRow(3)}
			tt.bad(&rows[1])
			if err := e.w.WriteRows(context.Background(), rows); err != nil {
				t.Fatalf("WriteRows = %v, want nil: the bad row is stored as an error record", err)
			}
			var ids []string
			for _, r := range e.rows() {
				ids = append(ids, r["message_id"].(string))
			}
			if !slices.Equal(ids, []string{"m1", "m3"}) {
				t.Errorf("rows table has %v, want [m1 m3]", ids)
			}
			recs := e.errorRecords()
			if len(recs) != 1 {
				t.Fatalf("error table has %d records, want 1", len(recs))
			}
			r := recs[0]
			if r["reason"] != "bigquery_row_error" || r["message_id"] != "m2" ||
				string(r["payloadBytes"].([]byte)) != string(rows[1].Payload) ||
				r["subscription"] != rows[1].Subscription ||
				fmt.Sprint(r["attributes"]) != "[map[key:origin value:edge]]" ||
				!strings.Contains(r["errorMessage"].(string), tt.want) ||
				!strings.Contains(r["errorMessage"].(string), "proj.ds.events") {
				t.Errorf("error record = %v, want reason bigquery_row_error for m2 with its payload and a message containing %q", r, tt.want)
			}
			if s := e.w.Stats(); s.RowErrors != 1 || s.Rows != 2 || s.ErrorRecords != 1 {
				t.Errorf("Stats() = %+v, want 1 row error, 2 rows, 1 error record", s)
			}
		})
	}
}

// TestBigQueryRowErrorsListedInRounds: when BigQuery lists only some of
// the bad rows of an append, the writer appends the others again and finds
// the next bad row in a later round; each round's row errors name rows of
// that round's request, which are mapped back to the rows written.
func TestBigQueryRowErrorsListedInRounds(t *testing.T) {
	e := newEnv(t, BigQueryConfig{})
	e.fake.ListFirstRowErrorOnly(100)
	rows := []enrich.Row{sampleRow(1), sampleRow(2), sampleRow(3), sampleRow(4), sampleRow(5)}
	rows[1].Payload = json.RawMessage(`{"a":`)
	rows[3].EventTime = time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := e.w.WriteRows(context.Background(), rows); err != nil {
		t.Fatalf("WriteRows = %v, want nil: the bad rows are stored as error records", err)
	}
	var ids, recIDs []string
	for _, r := range e.rows() {
		ids = append(ids, r["message_id"].(string))
	}
	for _, r := range e.errorRecords() {
		recIDs = append(recIDs, r["message_id"].(string))
	}
	slices.Sort(recIDs)
	if !slices.Equal(ids, []string{"m1", "m3", "m5"}) || !slices.Equal(recIDs, []string{"m2", "m4"}) {
		t.Errorf("rows table has %v, error table %v; want [m1 m3 m5] and [m2 m4]", ids, recIDs)
	}
}

// TestBigQueryOversizeRowNeedsErrorRecord: a row too large for an append
// is acknowledged only once its error record is stored.
func TestBigQueryOversizeRowNeedsErrorRecord(t *testing.T) {
	e := newEnv(t, BigQueryConfig{})
	e.fake.RejectTable(testProject, testDataset, testErrorTable, codes.PermissionDenied)
	big := sampleRow(2)
	big.Payload = json.RawMessage(`"` + strings.Repeat("a", maxBatchBytes) + `"`)
	err := e.w.WriteRows(context.Background(), []enrich.Row{sampleRow(1), big})
	if err == nil || !strings.Contains(err.Error(), testErrorTable) {
		t.Errorf("WriteRows of a row over the append limit, the error table refusing = %v, want an error naming %s", err, testErrorTable)
	}
}

func TestBigQueryRowErrorNeedsErrorRecord(t *testing.T) {
	e := newEnv(t, BigQueryConfig{})
	e.fake.RejectTable(testProject, testDataset, testErrorTable, codes.PermissionDenied)
	rows := []enrich.Row{sampleRow(1), sampleRow(2)}
	rows[1].EventTime = time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC)
	err := e.w.WriteRows(context.Background(), rows)
	if err == nil || !strings.Contains(err.Error(), testErrorTable) {
		t.Errorf("WriteRows with the error table refusing = %v, want an error naming %s", err, testErrorTable)
	}
	if n := len(e.rows()); n != 1 {
		t.Errorf("rows table has %d rows, want 1: the good row is stored", n)
	}
}

func TestBigQueryTransientFailure(t *testing.T) {
	e := newEnv(t, BigQueryConfig{})
	row := []enrich.Row{sampleRow(1)}
	e.fake.FailNextAppends(1000) // down for longer than the client's retries
	if err := e.w.WriteRows(context.Background(), row); err == nil {
		t.Fatal("WriteRows with BigQuery down = nil, want an error so that Pub/Sub redelivers")
	}
	e.fake.FailNextAppends(0)
	if err := e.w.WriteRows(context.Background(), row); err != nil {
		t.Fatalf("WriteRows after recovery = %v", err)
	}
	if n := len(e.rows()); n != 1 {
		t.Errorf("rows table has %d rows, want the row once", n)
	}
	if s := e.w.Stats(); s.AppendFailures != 1 {
		t.Errorf("Stats().AppendFailures = %d, want 1", s.AppendFailures)
	}
}

func TestBigQueryRetriedAppend(t *testing.T) {
	e := newEnv(t, BigQueryConfig{})
	e.fake.FailNextAppends(1) // the stream breaks once; the client reconnects
	if err := e.w.WriteRows(context.Background(), []enrich.Row{sampleRow(1)}); err != nil {
		t.Fatalf("WriteRows = %v", err)
	}
	if n := len(e.rows()); n != 1 {
		t.Errorf("rows table has %d rows, want 1", n)
	}
	if n := e.fake.Appends(); n != 2 {
		t.Errorf("fake saw %d appends, want 2 (failed, then retried)", n)
	}
}

func TestBigQueryWriteTimeout(t *testing.T) {
	e := newEnv(t, BigQueryConfig{WriteTimeout: 100 * time.Millisecond})
	e.fake.SetLatency(time.Hour)
	err := e.w.WriteRows(context.Background(), []enrich.Row{sampleRow(1)})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WriteRows against a hanging append = %v, want DeadlineExceeded", err)
	}
}

// TestBigQueryWriteTimeoutOfJoiners: callers that join a batch while
// another append hangs are bounded by WriteTimeout too, though they have no
// timer of their own: their batch's appends are.
func TestBigQueryWriteTimeoutOfJoiners(t *testing.T) {
	const timeout = 200 * time.Millisecond
	e := newEnv(t, BigQueryConfig{WriteTimeout: timeout})
	release := e.fake.Hold() // every append hangs until the test ends
	defer release()
	errs := make(chan error, 3)
	for i := range 3 {
		go func() { errs <- e.w.WriteRows(context.Background(), []enrich.Row{sampleRow(i)}) }()
		if i == 0 {
			waitFor(t, "the first append to reach the fake", func() bool { return e.fake.Appends() == 1 })
		}
	}
	for range 3 {
		select {
		case err := <-errs:
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("WriteRows against a hanging append = %v, want DeadlineExceeded", err)
			}
		case <-time.After(20 * timeout): // liveness, not speed: a caller without a bound never returns
			t.Fatalf("a WriteRows call did not return within 20 times WriteTimeout")
		}
	}
}

func TestBigQueryCallerContext(t *testing.T) {
	e := newEnv(t, BigQueryConfig{})
	release := e.fake.Hold()
	defer release()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.w.WriteRows(ctx, []enrich.Row{sampleRow(1)}) }()
	waitFor(t, "the append to reach the fake", func() bool { return e.fake.Appends() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("WriteRows with its context cancelled = %v, want Canceled", err)
	}
}

func TestBigQueryTableMissing(t *testing.T) {
	e := newEnv(t, BigQueryConfig{Table: "missing"})
	err := e.w.WriteRows(context.Background(), []enrich.Row{sampleRow(1)})
	if !errors.Is(err, ErrTableNotFound) || !strings.Contains(err.Error(), "proj.ds.missing") {
		t.Fatalf("WriteRows to a missing table = %v, want ErrTableNotFound naming proj.ds.missing", err)
	}
}

func TestBigQueryTableCreatedLater(t *testing.T) {
	e := newEnv(t, BigQueryConfig{})
	e.fake.RemoveTable(testProject, testDataset, testTable)
	if err := e.w.WriteRows(context.Background(), []enrich.Row{sampleRow(1)}); !errors.Is(err, ErrTableNotFound) {
		t.Fatalf("WriteRows to a missing table = %v, want ErrTableNotFound", err)
	}
	rows, _ := RowsSchema()
	if err := e.fake.AddTableJSON(testProject, testDataset, testTable, rows.JSON); err != nil {
		t.Fatal(err)
	}
	if err := e.w.WriteRows(context.Background(), []enrich.Row{sampleRow(1)}); err != nil {
		t.Errorf("WriteRows once the table exists = %v", err)
	}
}

// TestBigQueryTableLookupRetried: tables.get answered 503 is tried again
// twice; a third 503 fails the write (Pub/Sub redelivers), and the next
// write looks the table up again.
func TestBigQueryTableLookupRetried(t *testing.T) {
	e := newEnv(t, BigQueryConfig{})
	e.fake.FailNextTableGets(2)
	if err := e.w.WriteRows(context.Background(), []enrich.Row{sampleRow(1)}); err != nil {
		t.Fatalf("WriteRows after two 503s from tables.get = %v, want nil", err)
	}

	e = newEnv(t, BigQueryConfig{})
	e.fake.FailNextTableGets(3)
	err := e.w.WriteRows(context.Background(), []enrich.Row{sampleRow(2)})
	if err == nil || errors.Is(err, ErrTableNotFound) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("WriteRows after three 503s from tables.get = %v, want the 503", err)
	}
	if err := e.w.WriteRows(context.Background(), []enrich.Row{sampleRow(2)}); err != nil {
		t.Fatalf("WriteRows once tables.get answers = %v, want nil", err)
	}
	if n := len(e.fake.Rows(testProject, testDataset, testTable)); n != 1 {
		t.Errorf("rows stored = %d, want 1", n)
	}
}

// TestBigQueryTableDeletedUnderTheStream: a table deleted while its stream
// is open is looked up again by the next write, which then says what
// tables.get says: that the table is missing, and once it is made again
// from an old schema, which column it lacks.
func TestBigQueryTableDeletedUnderTheStream(t *testing.T) {
	e := newEnv(t, BigQueryConfig{})
	write := func(i int) error { return e.w.WriteRows(context.Background(), []enrich.Row{sampleRow(i)}) }
	if err := write(1); err != nil {
		t.Fatal(err)
	}
	e.fake.RemoveTable(testProject, testDataset, testTable)
	if err := write(2); err == nil {
		t.Fatal("WriteRows to a deleted table = nil, want an error")
	}
	if err := write(2); !errors.Is(err, ErrTableNotFound) {
		t.Errorf("the next WriteRows to the deleted table = %v, want ErrTableNotFound", err)
	}
	rows, _ := RowsSchema()
	stale := slices.DeleteFunc(officialSchema(t, rows), func(f *bigquery.FieldSchema) bool { return f.Name == "tenant_name" })
	e.fake.AddTable(testProject, testDataset, testTable, stale)
	if err := write(2); err == nil || !strings.Contains(err.Error(), `"tenant_name"`) {
		t.Errorf("WriteRows to the table made again without tenant_name = %v, want an error naming the column", err)
	}
	if err := e.fake.AddTableJSON(testProject, testDataset, testTable, rows.JSON); err != nil {
		t.Fatal(err)
	}
	if err := write(2); err != nil {
		t.Errorf("WriteRows once the table is made again = %v", err)
	}
}

func TestBigQueryStaleTableSchema(t *testing.T) {
	e := newEnv(t, BigQueryConfig{})
	rows, _ := RowsSchema()
	stale := slices.DeleteFunc(officialSchema(t, rows), func(f *bigquery.FieldSchema) bool { return f.Name == "tenant_name" })
	e.fake.AddTable(testProject, testDataset, testTable, stale)
	err := e.w.WriteRows(context.Background(), []enrich.Row{sampleRow(1)})
	if err == nil || !strings.Contains(err.Error(), `"tenant_name"`) {
		t.Errorf("WriteRows to a table without tenant_name = %v, want an error naming the column", err)
	}
}

func TestBigQueryClose(t *testing.T) {
	e := newEnv(t, BigQueryConfig{})
	if err := e.w.WriteRows(context.Background(), []enrich.Row{sampleRow(1)}); err != nil {
		t.Fatal(err)
	}
	if err := e.w.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if err := e.w.WriteRows(context.Background(), []enrich.Row{sampleRow(2)}); !errors.Is(err, ErrClosed) {
		t.Errorf("WriteRows after Close = %v, want ErrClosed", err)
	}
	if err := e.w.WriteErrors(context.Background(), []enrich.ErrorRecord{{}}); !errors.Is(err, ErrClosed) {
		t.Errorf("WriteErrors after Close = %v, want ErrClosed", err)
	}
}

func TestNewBigQueryConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     BigQueryConfig
		wantErr bool
		want    BigQueryConfig // fields checked when no error
	}{
		{"defaults", BigQueryConfig{Project: "p", Dataset: "d", Table: "t"}, false,
			BigQueryConfig{ErrorTable: "t_error_records", BatchMaxRows: 500, BatchMaxDelay: 5 * time.Millisecond, WriteTimeout: 30 * time.Second}},
		{"overrides", BigQueryConfig{Project: "p", Dataset: "d", Table: "t", ErrorTable: "dead", BatchMaxRows: 7, BatchMaxDelay: time.Second, WriteTimeout: time.Minute}, false,
			BigQueryConfig{ErrorTable: "dead", BatchMaxRows: 7, BatchMaxDelay: time.Second, WriteTimeout: time.Minute}},
		{"no table", BigQueryConfig{Project: "p", Dataset: "d"}, true, BigQueryConfig{}},
		{"error table is the rows table", BigQueryConfig{Project: "p", Dataset: "d", Table: "t", ErrorTable: "t"}, true, BigQueryConfig{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := NewBigQuery(context.Background(), tt.cfg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("NewBigQuery(%+v) error = %v, want error %v", tt.cfg, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			defer w.Close()
			got := map[string]any{"ErrorTable": w.cfg.ErrorTable, "BatchMaxRows": w.cfg.BatchMaxRows,
				"BatchMaxDelay": w.cfg.BatchMaxDelay, "WriteTimeout": w.cfg.WriteTimeout, "keepalive": w.cfg.keepalive}
			want := map[string]any{"ErrorTable": tt.want.ErrorTable, "BatchMaxRows": tt.want.BatchMaxRows,
				"BatchMaxDelay": tt.want.BatchMaxDelay, "WriteTimeout": tt.want.WriteTimeout,
				"keepalive": keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}} // what Google's front ends accept
			if !maps.Equal(got, want) {
				t.Errorf("NewBigQuery(%+v) config = %v, want %v", tt.cfg, got, want)
			}
		})
	}
}

func TestBigQueryOversizeRow(t *testing.T) {
	e := newEnv(t, BigQueryConfig{})
	big := sampleRow(2)
	big.Payload = json.RawMessage(`"` + strings.Repeat("a", maxBatchBytes) + `"`)
	if err := e.w.WriteRows(context.Background(), []enrich.Row{sampleRow(1), big}); err != nil {
		t.Fatalf("WriteRows with a row over the append limit = %v, want nil (it becomes an error record)", err)
	}
	if n := len(e.rows()); n != 1 {
		t.Errorf("rows table has %d rows, want 1", n)
	}
	recs := e.errorRecords()
	if len(recs) != 1 {
		t.Fatalf("error table has %d records, want 1", len(recs))
	}
	r := recs[0]
	payload := r["payloadBytes"].([]byte)
	if r["message_id"] != "m2" || r["reason"] != "bigquery_row_error" ||
		len(payload) == 0 || len(payload) >= len(big.Payload) || string(payload) != string(big.Payload[:len(payload)]) ||
		!strings.Contains(r["errorMessage"].(string), "payload truncated") {
		t.Errorf("error record = message_id %v, reason %v, %d payload bytes, message %.200q; want m2's truncated payload",
			r["message_id"], r["reason"], len(payload), r["errorMessage"])
	}
}

// TestBigQueryLargeErrorRecordKeepsItsBytes: an error record whose payload
// fits one append once, but not twice (payloadString and payloadBytes),
// keeps the exact bytes; only its text is cut, and the message says so.
func TestBigQueryLargeErrorRecordKeepsItsBytes(t *testing.T) {
	e := newEnv(t, BigQueryConfig{})
	payload := []byte(`{"device_id":"vr-0001","pad":"` + strings.Repeat("x", 6<<20) + `"}`)
	rec := enrich.ErrorRecord{Payload: payload, MessageID: "m1", Reason: enrich.ReasonPayloadTooLarge, ErrorMessage: "payload too large"}
	if err := e.w.WriteErrors(context.Background(), []enrich.ErrorRecord{rec}); err != nil {
		t.Fatalf("WriteErrors of a %d-byte payload = %v, want nil", len(payload), err)
	}
	recs := e.errorRecords()
	if len(recs) != 1 {
		t.Fatalf("error table has %d records, want 1", len(recs))
	}
	r := recs[0]
	text := r["payloadString"].(string)
	if got := r["payloadBytes"].([]byte); !bytes.Equal(got, payload) {
		t.Errorf("payloadBytes = %d bytes, want the whole %d-byte payload", len(got), len(payload))
	}
	if len(text) == 0 || len(text) >= len(payload) || !bytes.HasPrefix(payload, []byte(text)) {
		t.Errorf("payloadString = %d bytes, want a cut prefix of the %d-byte payload", len(text), len(payload))
	}
	if msg := r["errorMessage"].(string); !strings.HasPrefix(msg, "payload too large (payloadString cut from") {
		t.Errorf("errorMessage = %q, want the original message and the cut", msg)
	}
}

// TestBigQueryLargeErrorRecordNotUTF8: a payload too large for one append
// whose text is much shorter than its bytes (a run of invalid UTF-8 is one
// U+FFFD in payloadString) is cut until its record fits, instead of
// failing every delivery with a request over BigQuery's limit.
func TestBigQueryLargeErrorRecordNotUTF8(t *testing.T) {
	e := newEnv(t, BigQueryConfig{})
	for i, payload := range [][]byte{
		bytes.Repeat([]byte{0xff}, 12<<20),
		bytes.Repeat([]byte("\xffa\xfe"), 4<<20), // short valid runs between invalid bytes
	} {
		id := fmt.Sprintf("m%d", i)
		rec := enrich.ErrorRecord{Payload: payload, MessageID: id, Reason: enrich.ReasonInvalidEnvelope, ErrorMessage: "not an envelope"}
		if err := e.w.WriteErrors(context.Background(), []enrich.ErrorRecord{rec}); err != nil {
			t.Fatalf("WriteErrors of a %d-byte payload = %v, want nil", len(payload), err)
		}
		var r map[string]any
		for _, got := range e.errorRecords() {
			if got["message_id"] == id {
				r = got
			}
		}
		if r == nil {
			t.Fatalf("no error record for %s", id)
		}
		got := r["payloadBytes"].([]byte)
		if len(got) == 0 || len(got) > maxBatchBytes || !bytes.HasPrefix(payload, got) {
			t.Errorf("payloadBytes = %d bytes, want a prefix of the %d-byte payload that fits one append", len(got), len(payload))
		}
		if msg := r["errorMessage"].(string); !strings.Contains(msg, fmt.Sprintf("payload truncated from %d to %d bytes", len(payload), len(got))) {
			t.Errorf("errorMessage = %q, want it to say how the payload was cut", msg)
		}
	}
}

// TestBigQueryForgedErrorRecordFits: a forged push can carry megabytes of
// attributes, message id or subscription, which Pub/Sub never does. Its
// error record is cut to what Pub/Sub allows, so that it fits one append
// instead of failing every delivery; a payload beside such attributes is
// kept whole when it fits.
func TestBigQueryForgedErrorRecordFits(t *testing.T) {
	e := newEnv(t, BigQueryConfig{})
	huge := strings.Repeat("é", 3<<20) // 6 MiB, cut at a character boundary
	many := map[string]string{}
	for i := range 150 {
		many[fmt.Sprintf("k%03d", i)] = strings.Repeat("v", 60_000)
	}
	payload := bytes.Repeat([]byte("p"), 4<<20)
	for _, c := range []struct {
		id       string
		rec      enrich.ErrorRecord
		cut      string
		attrs    int // attributes kept
		wholeLen int // payloadBytes kept whole
	}{
		{"values", enrich.ErrorRecord{Attributes: map[string]string{"a": huge, "b": huge, "ok": "1"}},
			"attributes (3, cut to 3)", 3, 3},
		{"keys", enrich.ErrorRecord{Attributes: map[string]string{huge: "1", huge + "x": "2"}},
			"attributes (2, cut to 1)", 1, 3}, // both keys cut to the same 256 bytes
		{"many", enrich.ErrorRecord{Attributes: many, Payload: payload}, "attributes (150, cut to 100)", 100, len(payload)},
		{"names", enrich.ErrorRecord{Subscription: huge, Attributes: map[string]string{"a": huge}},
			"subscription, attributes (1, cut to 1)", 1, 3},
	} {
		t.Run(c.id, func(t *testing.T) {
			rec := c.rec
			rec.MessageID, rec.Reason, rec.ErrorMessage = c.id, enrich.ReasonInvalidEnvelope, "forged"
			if rec.Payload == nil {
				rec.Payload = []byte("p p")
			}
			if err := e.w.WriteErrors(context.Background(), []enrich.ErrorRecord{rec}); err != nil {
				t.Fatalf("WriteErrors = %v, want nil", err)
			}
			var r map[string]any
			for _, got := range e.errorRecords() {
				if got["message_id"] == c.id {
					r = got
				}
			}
			if r == nil {
				t.Fatalf("no error record for %s", c.id)
			}
			if msg, want := r["errorMessage"].(string), "forged ("+c.cut+" cut to Pub/Sub's limits to fit one append)"; msg != want {
				t.Errorf("errorMessage = %q, want %q", msg, want)
			}
			attrs := r["attributes"].([]any)
			if len(attrs) != c.attrs {
				t.Errorf("%d attributes stored, want %d", len(attrs), c.attrs)
			}
			for _, a := range attrs {
				kv := a.(map[string]any)
				k, v := kv["key"].(string), kv["value"].(string)
				if len(k) > 256 || len(v) > 1024 || !utf8.ValidString(k) || !utf8.ValidString(v) {
					t.Errorf("attribute of %d and %d bytes stored, want at most 256 and 1024, valid UTF-8", len(k), len(v))
				}
			}
			if sub := r["subscription"]; sub != nil && len(sub.(string)) > 1024 {
				t.Errorf("subscription of %d bytes stored, want at most 1024", len(sub.(string)))
			}
			if got := r["payloadBytes"].([]byte); len(got) != c.wholeLen {
				t.Errorf("payloadBytes = %d bytes, want the whole %d", len(got), c.wholeLen)
			}
		})
	}
}

func TestBigQueryReopensBrokenStream(t *testing.T) {
	e := newEnv(t, BigQueryConfig{})
	if err := e.w.WriteRows(context.Background(), []enrich.Row{sampleRow(1)}); err != nil {
		t.Fatal(err)
	}
	// Break the rows table's stream under the writer, as a terminal
	// stream error would.
	e.w.rows.mu.Lock()
	e.w.rows.cur.ms.Close()
	e.w.rows.mu.Unlock()
	if err := e.w.WriteRows(context.Background(), []enrich.Row{sampleRow(2)}); err != nil {
		t.Fatalf("WriteRows on a broken stream = %v, want nil: the append is retried on a new stream", err)
	}
	if n := len(e.rows()); n != 2 {
		t.Errorf("rows table has %d rows, want 2", n)
	}
	if s := e.w.Stats(); s.StreamOpens != 2 {
		t.Errorf("Stats().StreamOpens = %d, want 2 (the first stream, then its replacement)", s.StreamOpens)
	}
}

// TestBigQueryRetiredStreamWaitsForItsAppends: a stream retired while an
// append whose caller gave up (WriteTimeout) is still pending is closed
// only once that append is answered. Closed before, managedwriter retries
// the append on the closed stream for ever: a goroutine, and the rows it
// holds, for the process's life.
func TestBigQueryRetiredStreamWaitsForItsAppends(t *testing.T) {
	e := newEnv(t, BigQueryConfig{WriteTimeout: 100 * time.Millisecond})
	e.fake.SetLatency(time.Second)
	if err := e.w.WriteRows(context.Background(), []enrich.Row{sampleRow(1)}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WriteRows against a slow append = %v, want DeadlineExceeded", err)
	}
	retrying := func() int { // goroutines (of this test or others) retrying an append
		buf := make([]byte, 8<<20)
		return strings.Count(string(buf[:runtime.Stack(buf, true)]), "managedwriter.(*ManagedStream).processRetry")
	}
	before := retrying()
	e.w.rows.mu.Lock()
	ref := e.w.rows.cur
	e.w.rows.mu.Unlock()
	e.w.rows.retire(ref, errors.New("broken, as a failed send would say"))
	time.Sleep(3 * time.Second) // the append's answer, then the library's retries if it was closed under it
	if after := retrying(); after > before {
		t.Errorf("%d managedwriter goroutines retry an append after the retire, %d before: the stream was closed under its append", after, before)
	}
	e.fake.SetLatency(0)
	if err := e.w.WriteRows(context.Background(), []enrich.Row{sampleRow(2)}); err != nil {
		t.Errorf("WriteRows on a new stream = %v, want nil", err)
	}
}

// TestBigQueryInflightBytesBounded: a stream holds at most MaxInflightBytes
// of unanswered appends (an append larger than that goes alone): a batch
// that does not fit waits, within WriteTimeout, instead of adding its rows
// to what the library holds for a BigQuery that does not answer.
func TestBigQueryInflightBytesBounded(t *testing.T) {
	e := newEnv(t, BigQueryConfig{WriteTimeout: 300 * time.Millisecond, MaxInflightBytes: 1})
	release := e.fake.Hold()
	defer release()
	// The first caller gives up; its append stays in the library.
	if err := e.w.WriteRows(context.Background(), []enrich.Row{sampleRow(1)}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WriteRows against a held append = %v, want DeadlineExceeded", err)
	}
	if err := e.w.WriteRows(context.Background(), []enrich.Row{sampleRow(2)}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WriteRows while the stream is full = %v, want DeadlineExceeded", err)
	}
	release()
	waitFor(t, "the held append to be answered", func() bool { return len(e.rows()) >= 1 })
	time.Sleep(300 * time.Millisecond) // room for a second append, had it been sent
	if rows := e.rows(); len(rows) != 1 {
		t.Errorf("the rows table has %d rows, want 1: the second append was never sent", len(rows))
	}
}

// TestBigQueryDeadConnectionReplaced: a connection that stays open but
// answers nothing (a dead NAT mapping, a hung front end) is found by gRPC
// keepalive pings and replaced, and the append is sent again on the new
// one. Without keepalive it lasts until TCP gives up, about 15 minutes,
// and every write times out meanwhile.
func TestBigQueryDeadConnectionReplaced(t *testing.T) {
	fake, err := bqfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	addTables(t, fake)
	proxy, err := tcpproxy.Start(fake.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	w := newSink(t, fake, BigQueryConfig{
		// The default, 30 s: longer than this test's 11 s to notice the
		// dead connection. Production's 40 s is not, so appends sent in
		// its first 10 s time out and are redelivered; the rest land.
		WriteTimeout: DefaultWriteTimeout,
		GRPCEndpoint: proxy.Addr(),
		keepalive:    keepalive.ClientParameters{Time: 10 * time.Second, Timeout: time.Second}, // gRPC's shortest
	})
	if err := w.WriteRows(context.Background(), []enrich.Row{sampleRow(1)}); err != nil {
		t.Fatal(err)
	}
	before := proxy.Accepted() // the client dials a pool of connections
	proxy.Blackhole()
	if err := w.WriteRows(context.Background(), []enrich.Row{sampleRow(2)}); err != nil {
		t.Fatalf("WriteRows over a dead connection = %v, want nil: keepalive finds it, the append goes on a new one", err)
	}
	if n := len(fake.Rows(testProject, testDataset, testTable)); n != 2 {
		t.Errorf("rows table has %d rows, want 2", n)
	}
	if n := proxy.Accepted(); n <= before {
		t.Errorf("the proxy took %d connections, %d before the black hole: want a new one", n, before)
	}
}
