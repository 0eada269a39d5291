package cache

import (
	"context"
	"io"
	"time"
)

// Pacing of background refreshes.
//
// Go has no goroutine priorities: a refresh that parses flat out takes a
// whole CPU from the requests for as long as the parse lasts, and on a small
// instance (1 or 2 vCPUs) that is what the requests overlapping a refresh
// see as latency. A background refresh therefore reads through a pacer,
// which sleeps between reads so that the time the parser spends between
// reads is at most a fraction (Config.RefreshShare) of the refresh's wall
// time. A sleeping refresh leaves its P idle, so the scheduler runs requests
// and polls the network instead; a runtime.Gosched would not, because the
// yielded goroutine goes to the global run queue, which the scheduler
// checks before the network (BENCHMARKS.md, "p99 during metadata
// refreshes").
//
// The first load is never paced: requests wait for it.

// Pacing parameters: reads are cut to paceChunk bytes so that the parser
// never runs long between two chances to sleep, and sleeps shorter than
// minPause are saved up rather than taken. A step (from one Read or Pause
// to the next) is charged at most maxStepWork: parsing paceChunk bytes, or
// indexing a batch of devices, takes well under a millisecond, so a longer
// gap is mostly a stall, not work (the goroutine waiting for a CPU, a
// stop-the-world pause, Cloud Run throttling the CPU of an instance between
// requests), and charged in full a ten-minute stall would earn a
// ninety-minute sleep.
const (
	paceChunk   = 16 << 10
	minPause    = 500 * time.Microsecond
	maxStepWork = 20 * time.Millisecond
)

// pacer wraps the reader a refresh parses. The parse time between two
// reads is work; each unit of work earns (1-share)/share units of sleep.
// The time spent inside the underlying Read (waiting for the network) is
// not work: a slow download is not slowed further.
type pacer struct {
	r     io.Reader
	share float64
	clock func() time.Time
	sleep func(time.Duration) // returns early once the refresh is over (sleepCtx)
	// budget is the most it sleeps in all (0: no bound), so that a
	// refresh stalled at every step (each charged maxStepWork) still ends
	// well within its timeout: 3,100 reads of a million devices would
	// otherwise earn ten minutes of sleep.
	budget time.Duration

	mark  time.Time     // when the last Read returned; zero before the first
	owed  time.Duration // sleep earned and not yet taken
	slept time.Duration // in all, for the load log line
}

func (p *pacer) Read(b []byte) (int, error) {
	p.pace()
	if len(b) > paceChunk {
		b = b[:paceChunk]
	}
	n, err := p.r.Read(b)
	p.mark = p.clock()
	return n, err
}

// Pause paces the work a parser does after its last read (indexing what
// it parsed) as a read paces the work before it: the parser calls it
// between steps of that work (enrich.Pauser).
func (p *pacer) Pause() {
	p.pace()
	p.mark = p.clock()
}

// pace charges the work done since the last Read or Pause returned, and
// sleeps when the sleep it has earned reaches minPause.
func (p *pacer) pace() {
	if p.mark.IsZero() {
		return
	}
	work := min(p.clock().Sub(p.mark), maxStepWork)
	p.owed += time.Duration(float64(work) * (1 - p.share) / p.share)
	if p.owed >= minPause {
		d := p.owed
		if p.budget > 0 {
			d = min(d, p.budget-p.slept)
		}
		if d > 0 {
			p.sleep(d)
			p.slept += d
		}
		p.owed = 0
	}
}

// sleepCtx sleeps for d, or until ctx is done: a refresh that times out
// while it is paced stops sleeping.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
