package enrichevent

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

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

// FuzzEventBuilder holds readBinaryEvent (eventBuilder, with its
// remembered source) to binding.ToEvent: for any CloudEvents headers, the
// same event or an error for both, the first time a source is seen and again
// when it is remembered.
func FuzzEventBuilder(f *testing.F) {
	f.Add("1", "//pubsub.googleapis.com/projects/p/topics/t", "1.0", messagePublished, "2026-11-24T08:00:00.123Z", "application/json", "", "")
	f.Add("1", "//pubsub.googleapis.com/projects/p/topics/t", "0.3", "t", "", "", "subject", "v")
	f.Add("", "%zz", "1.0", "", "yesterday", "text/plain; charset=utf-8", "", "")
	f.Add("2", "http://[::1", "2.0", "t", "2026-11-24T08:00:00Z", "", "", "")
	f.Add("3", "", "1.0", "t", "", "", "", "")
	f.Fuzz(func(t *testing.T, id, source, specVersion, typ, tm, contentType, subject, ext string) {
		h := http.Header{}
		for name, v := range map[string]string{"Ce-Id": id, "Ce-Source": source, "Ce-Specversion": specVersion,
			"Ce-Type": typ, "Ce-Time": tm, "Content-Type": contentType, "Ce-Subject": subject, "Ce-Myext": ext} {
			if v != "" || name == "Ce-Specversion" {
				h[name] = []string{v}
			}
		}
		want, wantErr := binding.ToEvent(context.Background(), cehttp.NewMessage(h, nil))
		for range 2 { // parsing the source, then remembering it
			got, err := readBinaryEvent(cehttp.NewMessage(h, nil))
			// Headers are read in map order: with two bad values, either
			// error may come first, in ToEvent too.
			if (err == nil) != (wantErr == nil) {
				t.Fatalf("headers %v: readBinaryEvent error %v, binding.ToEvent %v", h, err, wantErr)
			}
			if err == nil && !reflect.DeepEqual(got, want) {
				t.Fatalf("headers %v: readBinaryEvent = %v, binding.ToEvent = %v", h, got, want)
			}
		}
	})
}
