package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// quietPeriod is how long a scenario watches for redeliveries after every
// message is accounted for: the emulator redelivers a nacked message about
// every second, so a loop would show within it.
const quietPeriod = 4 * time.Second

// poisonMessages: messages that can never become rows each land once in
// the error-records table with their reason, and are not redelivered in a
// loop; good events published with them land as rows.
func poisonMessages(h *harness, t *testing.T, name string) {
	s := h.newScenario(t, name)
	g := s.upload(baseMetadata())
	f := h.startFunction(s, 0)
	s.subscribe(f.port)
	huge := fmt.Appendf(nil, `{"device_id":"dev-001","blob":"%s"}`, strings.Repeat("x", maxPayloadBytes+1))
	poison := []*message{
		{data: []byte("device dev-001 says hello"), wantReason: "invalid_json"},
		{data: []byte(`[{"device_id":"dev-001","event":"heartbeat"}]`), wantReason: "not_an_object"},
		{data: []byte(`{"event":"heartbeat","seq":1}`), wantReason: "missing_device_id"},
		{data: huge, wantReason: "payload_too_large"},
		{data: []byte{0x00, 0x01, 0xfe, 0xff, 0x80, 0x7f, 0xc3, 0x28, 0x0a}, wantReason: "invalid_json"},
	}
	var good []*message
	for i := range 20 {
		dev := deviceID(i)
		good = append(good, &message{data: s.event(dev), device: dev})
	}
	poisonIDs := s.publish(poison)
	goodIDs := s.publish(good)
	s.await(nil)
	time.Sleep(quietPeriod) // a redelivery loop would show now
	tl := s.count()
	s.check()
	s.wantOnlyVersion(goodIDs, g, "good events")
	deliveries := make(map[string]int)
	for _, l := range s.logLines() {
		if l.Message == logPoison {
			deliveries[l.attr("message_id")]++
		}
	}
	for i, id := range poisonIDs {
		m := s.sent.get(id)
		if n := tl.found[id]; n != 1 {
			t.Errorf("poison message %d (%s, %s): %d error records, want 1", i, id, m.wantReason, n)
		}
		if n := deliveries[id]; n < 1 || n > 3 {
			t.Errorf("poison message %d (%s, %s): recorded on %d deliveries, want 1 (at most 3)", i, id, m.wantReason, n)
		}
	}
	if n := s.logCount(logRedeliver, ""); n != 0 {
		t.Errorf("%d deliveries answered 5xx, want 0", n)
	}
	t.Logf("poison deliveries by message id: %v", deliveries)
}

// coldStartConcurrency: 100 requests at once to a fresh instance share one
// metadata download. They are posted directly, as push requests, so that
// they really arrive together; the download is slowed down so that they all
// find the load in progress.
func coldStartConcurrency(h *harness, t *testing.T, name string) {
	s := h.newScenario(t, name)
	g := s.upload(baseMetadata())
	h.gcs.delay.Store(int64(500 * time.Millisecond))
	t.Cleanup(func() { h.gcs.delay.Store(0) })
	f := h.startFunction(s, 0)

	const n = 100
	client := &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: n},
	}
	defer client.CloseIdleConnections()
	url := fmt.Sprintf("http://%s/projects/%s/topics/%s", f.addr(), h.project, name)
	start := make(chan struct{})
	var wg sync.WaitGroup
	status := make([]int, n)
	errs := make([]error, n)
	for i := range n {
		dev := deviceID(i)
		m := &message{id: fmt.Sprintf("%s-%03d", name, i), data: s.event(dev), device: dev}
		if err := s.sent.add(m); err != nil {
			t.Fatal(err)
		}
		body := pushBody(m, "projects/"+h.project+"/subscriptions/"+name+"-direct")
		wg.Go(func() {
			<-start
			status[i], errs[i] = post(client, url, body)
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil || status[i] != http.StatusNoContent {
			t.Errorf("request %d: status %d, error %v; want 204", i, status[i], errs[i])
		}
	}
	s.await(nil)
	s.wantOnlyVersion(s.sent.ids(), g, "rows")
	if d := h.gcs.downloadsOf(s.object); d != 1 {
		t.Errorf("%d concurrent requests to a cold instance: %d metadata downloads, want 1", n, d)
	}
}

// pushBody is the body of a Pub/Sub push request carrying m.
func pushBody(m *message, subscription string) []byte {
	b, _ := json.Marshal(map[string]any{
		"message": map[string]any{
			"data":        m.data, // []byte: base64, as Pub/Sub sends it
			"messageId":   m.id,
			"publishTime": time.Now().UTC().Format(time.RFC3339Nano),
			"attributes":  map[string]string{"scenario": "direct"},
		},
		"subscription": subscription,
	})
	return b
}

// post sends one push request and returns the status code.
func post(client *http.Client, url string, body []byte) (int, error) {
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return resp.StatusCode, nil
}
