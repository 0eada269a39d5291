package cache

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// TestPacerSleepsInProportionToWork drives a pacer with a fake clock: the
// parser works 2 ms between reads and each read waits 3 ms for the network.
// Only the parse time is work, and each unit of work earns (1-share)/share
// units of sleep.
func TestPacerSleepsInProportionToWork(t *testing.T) {
	for _, tc := range []struct {
		name  string
		share float64
		work  time.Duration
	}{
		{"a fifth", 0.2, 2 * time.Millisecond},
		{"half", 0.5, 2 * time.Millisecond},
		{"short work saved up", 0.5, 100 * time.Microsecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(0, 0)
			clock := func() time.Time { return now }
			var sleeps []time.Duration
			sleep := func(d time.Duration) { sleeps = append(sleeps, d); now = now.Add(d) }
			data := bytes.Repeat([]byte("x"), 10*paceChunk+1)
			src := readFunc(func(b []byte) (int, error) {
				now = now.Add(3 * time.Millisecond) // waiting for the network: not work
				return bytes.NewReader(data).Read(b)
			})
			p := &pacer{r: io.LimitReader(src, int64(len(data))), share: tc.share, clock: clock, sleep: sleep}
			buf := make([]byte, 64<<10)
			reads := 0
			for {
				n, err := p.Read(buf)
				if n > paceChunk {
					t.Fatalf("Read returned %d bytes, want at most %d", n, paceChunk)
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				reads++
				now = now.Add(tc.work) // parsing what was read
			}
			var total time.Duration
			for _, d := range sleeps {
				if d < minPause {
					t.Errorf("slept %v, want no sleep under %v", d, minPause)
				}
				total += d
			}
			earned := time.Duration(float64(time.Duration(reads)*tc.work) * (1 - tc.share) / tc.share)
			if total > earned || earned-total >= minPause {
				t.Errorf("slept %v in all over %d reads of %v work, want %v less at most %v unslept", total, reads, tc.work, earned, minPause)
			}
			if p.slept != total {
				t.Errorf("slept = %v, want %v", p.slept, total)
			}
		})
	}
}

type readFunc func([]byte) (int, error)

func (f readFunc) Read(b []byte) (int, error) { return f(b) }
