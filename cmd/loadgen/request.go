package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// idLen is the length of every message id, so that a request's
// Content-Length does not depend on its id: ids are spliced into
// pre-built requests in place.
const idLen = 20

// idMarker stands for the message id in a template until the first splice.
var idMarker = strings.Repeat("#", idLen)

// The request shapes.
const (
	shapePush       = "push"       // a raw Pub/Sub push envelope
	shapeCloudEvent = "cloudevent" // a binary CloudEvent, as Eventarc delivers
)

// template is one pre-built HTTP/1.1 request: the whole request text, and
// where its message id is (in the body, and in Ce-Id for a CloudEvent).
type template struct {
	raw []byte
	ids []int // offsets of the idLen-byte message ids in raw
}

// buildTemplates returns n requests of the given shape, for host, each
// carrying a ~300-byte event of one of devices (round robin), with pad
// more bytes in its "pad" field.
func buildTemplates(shape, host string, devices []string, n, pad int) ([]template, error) {
	if len(devices) == 0 {
		return nil, fmt.Errorf("no devices")
	}
	publish := time.Now().UTC().Truncate(time.Millisecond)
	out := make([]template, n)
	for i := range out {
		body, err := pushBody(devices[i%len(devices)], i, pad, publish)
		if err != nil {
			return nil, err
		}
		raw, err := requestText(shape, host, body, publish)
		if err != nil {
			return nil, err
		}
		t := template{raw: raw}
		for off := 0; ; {
			j := bytes.Index(raw[off:], []byte(idMarker))
			if j < 0 {
				break
			}
			t.ids = append(t.ids, off+j)
			off += j + idLen
		}
		for _, off := range t.ids {
			putDecimal(raw[off:off+idLen], 0)
		}
		out[i] = t
	}
	return out, nil
}

// event is the payload of a message: a typical headset event, about 300
// bytes of JSON.
type event struct {
	DeviceID     string   `json:"device_id"`
	EventTime    string   `json:"event_time"`
	Event        string   `json:"event"`
	SessionID    string   `json:"session_id"`
	App          app      `json:"app"`
	Battery      int      `json:"battery"`
	TemperatureC float64  `json:"temperature_c"`
	Firmware     string   `json:"firmware"`
	Controllers  []string `json:"controllers"`
	IPDmm        float64  `json:"ipd_mm"`
	User         string   `json:"user"`
	ClinicMode   bool     `json:"clinic_mode"`
	Pad          string   `json:"pad,omitempty"`
}

type app struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// pushBody returns the push envelope of event number i of device, with
// idMarker as its message id and pad bytes of padding in the event.
func pushBody(device string, i, pad int, publish time.Time) ([]byte, error) {
	data, err := json.Marshal(event{
		DeviceID:     device,
		EventTime:    publish.Add(-time.Duration(i%5000) * time.Millisecond).Format(time.RFC3339Nano),
		Event:        []string{"session_start", "heartbeat", "exercise_rep", "session_end"}[i%4],
		SessionID:    fmt.Sprintf("6f1c2a9e-3b7d-4e21-9a54-%012x", i),
		App:          app{Name: "physio-balance", Version: "4.12.3"},
		Battery:      100 - i%90,
		TemperatureC: 36.4,
		Firmware:     "2.8.1-rc3",
		Controllers:  []string{"left", "right"},
		IPDmm:        63.5,
		User:         fmt.Sprintf("patient-%05d", i%100000),
		ClinicMode:   i%2 == 0,
		Pad:          strings.Repeat("p", pad),
	})
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		"message": map[string]any{
			"data":        base64.StdEncoding.EncodeToString(data),
			"messageId":   idMarker,
			"publishTime": publish.Format(time.RFC3339Nano),
			"attributes":  map[string]string{"origin": "loadgen", "schema": "v3"},
		},
		"subscription": "projects/loadgen/subscriptions/device-events-push",
	})
}

// requestText returns the HTTP/1.1 request that posts body in the shape.
func requestText(shape, host string, body []byte, publish time.Time) ([]byte, error) {
	var b bytes.Buffer
	switch shape {
	case shapePush:
		// Pub/Sub pushes to the subscription's endpoint; the framework
		// takes the topic from the path.
		fmt.Fprintf(&b, "POST /projects/loadgen/topics/device-events HTTP/1.1\r\n")
	case shapeCloudEvent:
		fmt.Fprintf(&b, "POST / HTTP/1.1\r\n")
		fmt.Fprintf(&b, "Ce-Id: %s\r\nCe-Specversion: 1.0\r\n", idMarker)
		fmt.Fprintf(&b, "Ce-Type: google.cloud.pubsub.topic.v1.messagePublished\r\n")
		fmt.Fprintf(&b, "Ce-Source: //pubsub.googleapis.com/projects/loadgen/topics/device-events\r\n")
		fmt.Fprintf(&b, "Ce-Time: %s\r\n", publish.Format(time.RFC3339Nano))
	default:
		return nil, fmt.Errorf("unknown shape %q (want %s or %s)", shape, shapePush, shapeCloudEvent)
	}
	fmt.Fprintf(&b, "Host: %s\r\nUser-Agent: loadgen\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", host, len(body))
	b.Write(body)
	return b.Bytes(), nil
}

// appendTo appends t to dst with the message id of request seq of worker
// in phase spliced in: distinct across the phases, workers and requests of
// one run.
func (t *template) appendTo(dst []byte, phase, worker int, seq uint64) []byte {
	start := len(dst)
	dst = append(dst, t.raw...)
	for _, off := range t.ids {
		id := dst[start+off : start+off+idLen]
		putDecimal(id[:3], uint64(phase))
		putDecimal(id[3:8], uint64(worker))
		putDecimal(id[8:], seq)
	}
	return dst
}

// putDecimal writes v into dst as zero-padded decimal digits (the low ones
// if v has more digits than dst has room for).
func putDecimal(dst []byte, v uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = byte('0' + v%10)
		v /= 10
	}
}
