package enrichevent

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	"github.com/devicestream/enrichevent/internal/bqfake"
	"github.com/devicestream/enrichevent/sink"
)

// The functions framework has a process-global registry and no shutdown,
// so TestMain starts it once, on a free loopback port, with the function
// configured through its environment like a deployment: sample metadata,
// rows into the BigQuery fake.
var (
	frameworkURL string
	bq           *bqfake.Server
)

const (
	testProject = "test-project"
	testDataset = "devices"
	testTable   = "events"
)

func TestMain(m *testing.M) {
	os.Exit(runWithFramework(m))
}

func runWithFramework(m *testing.M) int {
	var err error
	bq, err = bqfake.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer bq.Close()
	rows, err := sink.RowsSchema()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	errs, err := sink.ErrorRecordsSchema()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for table, schema := range map[string]*sink.TableSchema{testTable: rows, testTable + "_error_records": errs} {
		if err := bq.AddTableJSON(testProject, testDataset, table, schema.JSON); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}

	port, err := freePort()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for k, v := range map[string]string{
		"FUNCTION_TARGET":                "EnrichEvent",
		"METADATA_URI":                   "testdata/devices.csv",
		"BQ_TABLE":                       testProject + "." + testDataset + "." + testTable,
		"BIGQUERY_EMULATOR_HOST":         bq.RESTEndpoint(),
		"BIGQUERY_STORAGE_EMULATOR_HOST": bq.GRPCAddr(),
		"LOG_LEVEL":                      "error",
	} {
		os.Setenv(k, v)
	}
	go func() {
		err := funcframework.StartHostPort("127.0.0.1", port)
		fmt.Fprintf(os.Stderr, "funcframework.StartHostPort: %v\n", err)
		os.Exit(1)
	}()
	frameworkURL = "http://127.0.0.1:" + port
	if err := waitListening("127.0.0.1:"+port, 10*time.Second); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	return port, err
}

func waitListening(addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("framework not listening on %s after %v: %w", addr, limit, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// frameworkRows returns the rows table's rows and the error records in the fake.
func frameworkRows() (rows, errs []map[string]any) {
	return bq.Rows(testProject, testDataset, testTable), bq.Rows(testProject, testDataset, testTable+"_error_records")
}

// byMessageID counts rows per message id.
func byMessageID(rows []map[string]any) map[string]int {
	n := make(map[string]int)
	for _, r := range rows {
		id, _ := r["message_id"].(string)
		n[id]++
	}
	return n
}

// TestFrameworkServesEverySample posts every sample request through the
// functions framework over HTTP: binary and structured CloudEvents and raw
// push envelopes all land as rows, malformed ones as error records, in the
// BigQuery fake.
func TestFrameworkServesEverySample(t *testing.T) {
	files := map[string]string{ // file -> table it lands in
		"push.http": "rows", "eventarc_binary.http": "rows", "structured.http": "rows",
		"unknown_device.http": "rows", "numeric_device_id.http": "rows",
		"bad_not_json.http": "errors", "bad_json_array.http": "errors", "bad_missing_device_id.http": "errors",
		"bad_empty_device_id.http": "errors", "bad_base64.http": "errors", "bad_binary.http": "errors",
		"bad_event_type.http": "errors",
	}
	for file, table := range files {
		req := sampleRequest(t, file)
		body, _ := io.ReadAll(req.Body)
		out, err := http.NewRequest("POST", frameworkURL+req.URL.Path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		out.Header = req.Header
		resp, err := http.DefaultClient.Do(out)
		if err != nil {
			t.Fatalf("POST %s: %v", file, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Errorf("POST %s = %d, want 204", file, resp.StatusCode)
		}
		var id string
		var env struct {
			Message struct{ MessageID string } `json:"message"`
			Data    struct {
				Message struct{ MessageID string } `json:"message"`
			} `json:"data"`
		}
		json.Unmarshal(body, &env)
		id = env.Message.MessageID + env.Data.Message.MessageID
		if id == "" {
			id = req.Header.Get("Ce-Id")
		}
		rows, errs := frameworkRows()
		got := map[string]int{"rows": byMessageID(rows)[id], "errors": byMessageID(errs)[id]}
		if got[table] != 1 {
			t.Errorf("POST %s (message %s): %d rows, %d error records; want one in %s", file, id, got["rows"], got["errors"], table)
		}
	}
}

// TestConcurrentRequestsAllAnswered is the regression test for the
// framework's CloudEvent path, which can leave a request unanswered under
// concurrency: many keep-alive clients, each request with a client
// timeout, and every one must be answered 204 and land exactly once.
func TestConcurrentRequestsAllAnswered(t *testing.T) {
	const clients, perClient = 32, 40
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	var wg sync.WaitGroup
	failures := make(chan error, clients*perClient)
	for c := range clients {
		wg.Go(func() {
			for i := range perClient {
				id := fmt.Sprintf("conc-%d-%d", c, i)
				if err := postEvent(client, id, c%2 == 0); err != nil {
					failures <- fmt.Errorf("message %s: %w", id, err)
				}
			}
		})
	}
	wg.Wait()
	close(failures)
	for err := range failures {
		t.Error(err)
	}
	rows, _ := frameworkRows()
	n := byMessageID(rows)
	for c := range clients {
		for i := range perClient {
			if id := fmt.Sprintf("conc-%d-%d", c, i); n[id] != 1 {
				t.Errorf("message %s landed %d times, want 1", id, n[id])
			}
		}
	}
}

// postEvent posts one event for device vr-0001 as a binary CloudEvent or
// as a raw push envelope.
func postEvent(client *http.Client, id string, cloudEvent bool) error {
	data := base64.StdEncoding.EncodeToString([]byte(`{"device_id":"vr-0001","event":"heartbeat"}`))
	body := fmt.Sprintf(`{"message":{"data":%q,"messageId":%q,"publishTime":"2026-11-24T08:00:00Z"},"subscription":"projects/p/subscriptions/s"}`, data, id)
	req, err := http.NewRequest("POST", frameworkURL+"/projects/p/topics/t", bytes.NewBufferString(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if cloudEvent {
		req.Header.Set("Ce-Id", id)
		req.Header.Set("Ce-Specversion", "1.0")
		req.Header.Set("Ce-Type", messagePublished)
		req.Header.Set("Ce-Source", "//pubsub.googleapis.com/projects/p/topics/t")
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}
