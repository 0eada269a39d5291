package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/devicestream/enrichevent/enrich"
)

// BenchmarkBigQueryWriter drives WriteRows of one row each from c
// concurrent callers, through the official client into the fake over
// loopback gRPC, and reports how many rows each append carried and how many
// appends and rows a second went through. rtt is the fake's response
// latency (pipelined, like a network round trip; real BigQuery is some
// 10-30 ms away).
//
//	go test -run '^$' -bench BigQueryWriter -benchtime 20000x ./sink/
func BenchmarkBigQueryWriter(b *testing.B) {
	for _, rtt := range []time.Duration{0, 5 * time.Millisecond} {
		for _, c := range []int{1, 8, 64, 256} {
			b.Run(fmt.Sprintf("rtt=%v/c=%d", rtt, c), func(b *testing.B) {
				benchmarkWriter(b, rtt, c)
			})
		}
	}
}

func benchmarkWriter(b *testing.B, rtt time.Duration, c int) {
	e := newEnv(b, BigQueryConfig{})
	ctx := context.Background()
	row := []enrich.Row{sampleRow(1)}
	if err := e.w.WriteRows(ctx, row); err != nil { // open the stream
		b.Fatal(err)
	}
	e.fake.SetLatency(rtt)
	before := e.w.Stats()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range c {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := e.w.WriteRows(ctx, row); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	after := e.w.Stats()
	appends := float64(after.Appends - before.Appends)
	rows := float64(after.Rows - before.Rows)
	b.ReportMetric(rows/appends, "rows/append")
	b.ReportMetric(appends/elapsed.Seconds(), "appends/s")
	b.ReportMetric(rows/elapsed.Seconds(), "rows/s")
}

// BenchmarkStdoutRow is the stdout sink's WriteRows of one typical row to
// io.Discard: the hand-written encoder against encoding/json (refWriteRows,
// the implementation it replaced), in the same run. The row is built by
// enrich from a 334-byte event, a device of testdata/devices.csv and two
// attributes; "indented" is the same event pretty-printed, whose payload
// has to be compacted.
//
//	go test -run '^$' -bench StdoutRow -count 5 ./sink/
func BenchmarkStdoutRow(b *testing.B) {
	for _, payload := range []struct{ name, event string }{
		{"compact", benchEvent},
		{"indented", indent(b, benchEvent)},
	} {
		rows := []enrich.Row{typicalRow(b, payload.event)}
		s := NewStdout(io.Discard)
		ctx := context.Background()
		for _, enc := range []struct {
			name  string
			write func() error
		}{
			{"hand-written", func() error { return s.WriteRows(ctx, rows) }},
			{"encoding-json", func() error { return refWriteRows(s, rows) }},
		} {
			b.Run(payload.name+"/"+enc.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if err := enc.write(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// benchEvent is a typical event: about 300 bytes of JSON (334), enrich's
// benchmark event.
const benchEvent = `{"device_id":"vr-0017","event_time":"2026-11-24T07:59:58.123Z","event":"session_start",` +
	`"session_id":"6f1c2a9e-3b7d-4e21-9a54-0c8e7f3d2b19","app":{"name":"physio-balance","version":"4.12.3"},` +
	`"battery":87,"temperature_c":36.4,"firmware":"2.8.1-rc3","controllers":["left","right"],` +
	`"ipd_mm":63.5,"user":"patient-40913","clinic_mode":true}`

// typicalRow builds, with enrich, the row of event published with two
// attributes, joined with its device from the sample metadata file.
func typicalRow(tb testing.TB, event string) enrich.Row {
	tb.Helper()
	f, err := os.Open("../testdata/devices.csv")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	devices, err := enrich.ParseMetadata(f, enrich.FormatHint{Name: "devices.csv"})
	if err != nil {
		tb.Fatal(err)
	}
	ev, err := enrich.Options{}.ParseEvent([]byte(event))
	if err != nil {
		tb.Fatal(err)
	}
	found, ok := devices.Lookup(ev.DeviceID)
	if !ok {
		tb.Fatalf("device %q is not in testdata/devices.csv", ev.DeviceID)
	}
	// A copy, by field, that does not depend on whether Lookup returns a
	// Device or a *Device.
	dev := enrich.Device{
		ID: found.ID, AssetTag: found.AssetTag, LocationID: found.LocationID,
		TenantName: found.TenantName, Metadata: found.Metadata,
	}
	published := time.Date(2026, 11, 24, 8, 0, 0, 123000000, time.UTC)
	env := &enrich.PushEnvelope{
		Message: enrich.Message{
			Data:        []byte(event),
			Attributes:  map[string]string{"origin": "headset", "schema": "v3"},
			MessageID:   "13815214470394937",
			PublishTime: published,
		},
		Subscription: "projects/demo/subscriptions/device-events-push",
	}
	meta := enrich.MetaInfo{Version: 1764000000123456, LoadedAt: published.Add(-17 * time.Minute)}
	return enrich.BuildRow(env, ev, &dev, meta, published.Add(431*time.Millisecond+123456))
}

// indent returns the JSON text s pretty-printed.
func indent(tb testing.TB, s string) string {
	tb.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, []byte(s), "", "  "); err != nil {
		tb.Fatal(err)
	}
	return buf.String()
}
