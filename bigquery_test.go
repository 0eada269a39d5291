package enrichevent

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"github.com/devicestream/enrichevent/sink"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// These tests drive the function over HTTP, through the framework, the
// BigQuery sink and the official client, into the fake started by TestMain.

// postPayload posts one push envelope carrying payload and returns the
// status, or 0 (with t.Error: it may run on another goroutine) if the POST
// failed.
func postPayload(t *testing.T, id, payload string) int {
	t.Helper()
	data := base64.StdEncoding.EncodeToString([]byte(payload))
	body := fmt.Sprintf(`{"message":{"data":%q,"messageId":%q,"publishTime":"2026-11-24T08:00:00Z","attributes":{"k":"v"}},"subscription":"projects/p/subscriptions/s"}`, data, id)
	resp, err := http.Post(frameworkURL+"/projects/p/topics/t", "application/json", strings.NewReader(body))
	if err != nil {
		t.Errorf("POST %s: %v", id, err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// rowOf returns the row of message id in the rows table, or nil.
func rowOf(id string) map[string]any {
	rows, _ := frameworkRows()
	for _, r := range rows {
		if r["message_id"] == id {
			return r
		}
	}
	return nil
}

func TestBigQueryRowHasEveryColumn(t *testing.T) {
	if code := postPayload(t, "bq-columns", `{"device_id":"vr-0001","event_time":"2026-11-24T07:00:00Z"}`); code != http.StatusNoContent {
		t.Fatalf("POST = %d, want 204", code)
	}
	row := rowOf("bq-columns")
	if row == nil {
		t.Fatal("row not in the rows table")
	}
	want := map[string]any{
		"message_id": "bq-columns", "subscription": "projects/p/subscriptions/s", "device_id": "vr-0001",
		"device_found": true, "asset_tag": "AT-100231", "location_id": "LOC-NYC-014", "tenant_name": "Northwind Health",
		"event_time": time.Date(2026, 11, 24, 7, 0, 0, 0, time.UTC), "publish_time": time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC),
		"payload": `{"device_id":"vr-0001","event_time":"2026-11-24T07:00:00Z"}`, "attributes": `{"k":"v"}`,
	}
	for col, v := range want {
		if got := row[col]; fmt.Sprint(got) != fmt.Sprint(v) {
			t.Errorf("column %s = %v, want %v", col, got, v)
		}
	}
	for _, col := range []string{"device_metadata", "metadata_version", "metadata_loaded_at", "ingest_time"} {
		if row[col] == nil {
			t.Errorf("column %s is NULL, want a value (row %v)", col, row)
		}
	}
}

// TestBigQueryRejectedRowGoesToErrorTable: a row BigQuery refuses (a
// payload nested deeper than BigQuery's JSON limit of 500, which is valid
// JSON to us) becomes an error record with BigQuery's message, and the
// event is acknowledged.
func TestBigQueryRejectedRowGoesToErrorTable(t *testing.T) {
	payload := `{"device_id":"vr-0001","deep":` + strings.Repeat("[", 600) + strings.Repeat("]", 600) + `}`
	if code := postPayload(t, "bq-rejected", payload); code != http.StatusNoContent {
		t.Fatalf("POST = %d, want 204", code)
	}
	if rowOf("bq-rejected") != nil {
		t.Error("the rejected row is in the rows table")
	}
	_, errs := frameworkRows()
	var rec map[string]any
	for _, r := range errs {
		if r["message_id"] == "bq-rejected" {
			rec = r
		}
	}
	if rec == nil {
		t.Fatal("no error record for the rejected row")
	}
	if rec["reason"] != "bigquery_row_error" || !strings.Contains(fmt.Sprint(rec["errorMessage"]), "nesting depth") || rec["payloadString"] != payload {
		t.Errorf("error record = %v, want reason bigquery_row_error, BigQuery's message and the payload", rec)
	}
}

// TestBigQueryDownThenRecovered: while BigQuery fails the invocation
// answers 5xx; the same event posted again after recovery lands once.
func TestBigQueryDownThenRecovered(t *testing.T) {
	bq.FailNextAppends(1000)
	code := postPayload(t, "bq-down", `{"device_id":"vr-0002"}`)
	bq.FailNextAppends(0)
	if code < 500 {
		t.Fatalf("POST while BigQuery is down = %d, want 5xx", code)
	}
	if code := postPayload(t, "bq-down", `{"device_id":"vr-0002"}`); code != http.StatusNoContent {
		t.Fatalf("POST after recovery = %d, want 204", code)
	}
	rows, _ := frameworkRows()
	if n := byMessageID(rows)["bq-down"]; n != 1 {
		t.Errorf("message bq-down landed %d times, want 1", n)
	}
}

// TestBigQueryLoneRequestOneAppend: a lone request is one append, sent at
// once.
func TestBigQueryLoneRequestOneAppend(t *testing.T) {
	postPayload(t, "bq-warm", `{"device_id":"vr-0003"}`) // the stream is open
	before := bq.Appends()
	if code := postPayload(t, "bq-lone", `{"device_id":"vr-0003"}`); code != http.StatusNoContent {
		t.Fatalf("POST = %d, want 204", code)
	}
	if n := bq.Appends() - before; n != 1 {
		t.Errorf("a lone request made %d appends, want 1", n)
	}
}

// TestBigQueryConcurrentRequestsShareAppends: 200 concurrent invocations
// are written in far fewer appends than rows, and every row lands.
func TestBigQueryConcurrentRequestsShareAppends(t *testing.T) {
	postPayload(t, "bq-warm", `{"device_id":"vr-0004"}`)
	release := bq.Hold() // the first append waits, so the others must batch behind it
	before := bq.Appends()
	var wg sync.WaitGroup
	codes := make([]int, 200)
	for i := range codes {
		wg.Go(func() { codes[i] = postPayload(t, fmt.Sprintf("bq-conc-%d", i), `{"device_id":"vr-0004"}`) })
	}
	bqSink, ok := built.fn.Load().sink.(*sink.BigQuery)
	if !ok {
		t.Fatalf("the function's sink is %T, want *sink.BigQuery", built.fn.Load().sink)
	}
	for deadline := time.Now().Add(time.Minute); bqSink.Stats().PendingRows < int64(len(codes)); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) { // liveness: the requests queue up behind the held append
			t.Fatalf("%d of %d rows queued after a minute", bqSink.Stats().PendingRows, len(codes))
		}
	}
	release()
	wg.Wait()
	appends := bq.Appends() - before
	rows, _ := frameworkRows()
	n := byMessageID(rows)
	for i, code := range codes {
		if id := fmt.Sprintf("bq-conc-%d", i); code != http.StatusNoContent || n[id] != 1 {
			t.Errorf("message %s: status %d, landed %d times; want 204, once", id, code, n[id])
		}
	}
	if appends > 20 {
		t.Errorf("200 concurrent requests made %d appends, want far fewer than rows (at most 20)", appends)
	}
	t.Logf("200 concurrent requests: %d appends", appends)
}

// TestLargestPubSubMessageIsRecorded: the push envelope of the largest
// message Pub/Sub accepts (10 MB of data, 100 attributes of the largest
// size) is within the default MAX_REQUEST_BYTES, and becomes an error
// record (its payload is over MAX_PAYLOAD_BYTES); so does a body of that
// size that is not an envelope and not UTF-8, whose record must be cut to
// fit one append. Neither is refused or fails on every delivery.
func TestLargestPubSubMessageIsRecorded(t *testing.T) {
	attrs := make(map[string]string, 100)
	for i := range 100 {
		attrs[fmt.Sprintf("%03d%s", i, strings.Repeat("k", 253))] = strings.Repeat("v", 1024)
	}
	envelope, err := json.Marshal(map[string]any{
		"message": map[string]any{
			"data":        base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("x"), 10_000_000)),
			"messageId":   "largest",
			"publishTime": "2026-11-24T08:00:00Z",
			"attributes":  attrs,
		},
		"subscription": "projects/p/subscriptions/s",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, reason string
		body         []byte
	}{
		{"largest push envelope", "payload_too_large", envelope},
		{"body of that size, not UTF-8", "invalid_envelope", bytes.Repeat([]byte{0xff}, len(envelope))},
	} {
		resp, err := http.Post(frameworkURL+"/projects/p/topics/t", "application/json", bytes.NewReader(tc.body))
		if err != nil {
			t.Fatalf("%s: POST: %v", tc.name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Errorf("%s (%d bytes): POST = %d, want 204", tc.name, len(tc.body), resp.StatusCode)
		}
	}
	_, errs := frameworkRows()
	reasons := map[string]int{}
	for _, r := range errs {
		if len(r["payloadBytes"].([]byte)) > 1<<20 {
			reasons[fmt.Sprint(r["reason"])]++
		}
	}
	if reasons["payload_too_large"] != 1 || reasons["invalid_envelope"] != 1 {
		t.Errorf("large error records by reason = %v, want one payload_too_large and one invalid_envelope", reasons)
	}
}
