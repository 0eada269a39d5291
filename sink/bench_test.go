package sink

import (
	"context"
	"fmt"
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
