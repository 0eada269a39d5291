package enrichevent

import (
	"bytes"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/devicestream/enrichevent/enrich"
)

// FuzzDecodeRequest feeds arbitrary bodies, as each request shape, to the
// request decoder: it must never panic, and every failure must be a
// permanent error with a reason (so the message is recorded, not retried).
func FuzzDecodeRequest(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "requests", "*.http"))
	for _, file := range files {
		req := sampleRequest(f, filepath.Base(file))
		body, _ := io.ReadAll(req.Body)
		for shape := range 3 {
			f.Add(uint8(shape), body)
		}
	}
	if b, err := os.ReadFile("testdata/devices.csv"); err == nil {
		f.Add(uint8(0), b)
	}
	f.Fuzz(func(t *testing.T, shape uint8, body []byte) {
		r := httptest.NewRequest("POST", "/projects/p/topics/t", bytes.NewReader(body))
		switch shape % 3 {
		case 1: // binary CloudEvent
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Ce-Id", "1")
			r.Header.Set("Ce-Specversion", "1.0")
			r.Header.Set("Ce-Type", messagePublished)
			r.Header.Set("Ce-Source", "//pubsub.googleapis.com/projects/p/topics/t")
		case 2: // structured CloudEvent
			r.Header.Set("Content-Type", "application/cloudevents+json")
		}
		env, err := decodeRequest(r, body)
		if err != nil {
			if _, ok := enrich.ReasonOf(err); !ok {
				t.Fatalf("decodeRequest(%q) = %v, not a permanent error", body, err)
			}
			return
		}
		if _, err := (enrich.Options{}).ParseEvent(env.Message.Data); err != nil {
			if _, ok := enrich.ReasonOf(err); !ok {
				t.Fatalf("ParseEvent(%q) = %v, not a permanent error", env.Message.Data, err)
			}
		}
	})
}
