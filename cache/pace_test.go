package cache

import (
	"bytes"
	"context"
	"io"
	"sync/atomic"
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

// TestPacerPausesWorkAfterTheLastRead checks Pause, which a parser calls
// while it works after its last read: the work since the last Read or
// Pause earns sleep as the work between two reads does.
func TestPacerPausesWorkAfterTheLastRead(t *testing.T) {
	now := time.Unix(0, 0)
	var slept time.Duration
	p := &pacer{r: bytes.NewReader(nil), share: 0.2, clock: func() time.Time { return now },
		sleep: func(d time.Duration) { slept += d; now = now.Add(d) }}
	if _, err := p.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("Read = %v, want EOF", err)
	}
	for range 3 {
		now = now.Add(time.Millisecond) // indexing
		p.Pause()
	}
	if want := 3 * 4 * time.Millisecond; slept != want || p.slept != want {
		t.Errorf("slept %v (counted %v) after 3 ms of work at a share of 0.2, want %v", slept, p.slept, want)
	}
	p.Pause() // no work since the last Pause: no sleep
	if want := 12 * time.Millisecond; slept != want {
		t.Errorf("slept %v after a Pause with no work, want %v", slept, want)
	}
}

// TestPacerDoesNotChargeAStall: a step far longer than any parse of a
// chunk is a stall (the instance's CPU throttled between requests, a
// goroutine waiting for a CPU), not work, and earns at most the sleep of
// maxStepWork.
func TestPacerDoesNotChargeAStall(t *testing.T) {
	now := time.Unix(0, 0)
	var slept time.Duration
	p := &pacer{r: bytes.NewReader(make([]byte, 2*paceChunk)), share: 0.1, clock: func() time.Time { return now },
		sleep: func(d time.Duration) { slept += d; now = now.Add(d) }}
	buf := make([]byte, paceChunk)
	if _, err := p.Read(buf); err != nil {
		t.Fatal(err)
	}
	now = now.Add(10 * time.Minute) // stalled between two reads
	if _, err := p.Read(buf); err != nil {
		t.Fatal(err)
	}
	if want := 9 * maxStepWork; slept != want {
		t.Errorf("slept %v after a 10-minute stall at a share of 0.1, want %v (9 × maxStepWork)", slept, want)
	}
}

// TestPacerSleepIsBounded: a refresh stalled at every step sleeps at most
// its budget in all (half the load timeout), so that it still ends within
// the timeout.
func TestPacerSleepIsBounded(t *testing.T) {
	now := time.Unix(0, 0)
	var slept time.Duration
	p := &pacer{r: bytes.NewReader(make([]byte, 100*paceChunk)), share: 0.1, clock: func() time.Time { return now },
		sleep: func(d time.Duration) { slept += d; now = now.Add(d) }, budget: time.Second}
	buf := make([]byte, paceChunk)
	for {
		if _, err := p.Read(buf); err == io.EOF {
			break
		}
		now = now.Add(time.Minute) // stalled
	}
	if slept != time.Second || p.slept != time.Second {
		t.Errorf("slept %v (counted %v) over 100 stalled steps with a budget of 1s, want 1s", slept, p.slept)
	}
}

// TestPaceSleepEndsWithTheRefresh: the pacer's sleep returns when the
// refresh's context is done, so a refresh that times out does not go on
// sleeping.
func TestPaceSleepEndsWithTheRefresh(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(10 * time.Millisecond)
		cancel()
	}()
	done := make(chan struct{})
	go func() {
		sleepCtx(ctx, time.Hour)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("sleepCtx(ctx, 1h) still sleeping a minute after ctx was cancelled")
	}
}

type readFunc func([]byte) (int, error)

func (f readFunc) Read(b []byte) (int, error) { return f(b) }

// TestPacedDownloadStopsSleepingWithItsContext: a paced download sleeps on
// its refresh's context, so a refresh whose time is up stops sleeping and
// ends, rather than sleeping out the rest of its pacing (here about six
// minutes: 2,000 steps each charged maxStepWork of work, at a share of 0.1).
func TestPacedDownloadStopsSleepingWithItsContext(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 2000*paceChunk)
	c := New(Config[int64]{
		Source: bytesSource(data),
		Parse: func(r io.Reader, _ Version) (int64, error) {
			return io.CopyBuffer(io.Discard, r, make([]byte, paceChunk))
		},
		RefreshShare: 0.1,
	})
	var now atomic.Int64
	c.clock = func() time.Time { return time.Unix(0, now.Add(int64(maxStepWork))) } // every step is work
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, _, _, err := c.download(ctx, Version{Generation: 1}, true)
		done <- err
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second): // liveness: with the context honoured it takes well under a second
		t.Fatal("a paced download still running 30 s after its context ended")
	}
}

// bytesSource is a Source of one version holding its bytes.
type bytesSource []byte

func (b bytesSource) Stat(context.Context) (Version, error) { return Version{Generation: 1}, nil }
func (b bytesSource) Open(context.Context, Version) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(b)), nil
}
func (bytesSource) String() string { return "bytes" }
