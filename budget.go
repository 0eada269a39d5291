package enrichevent

import (
	"context"
	"math"
	"time"

	"golang.org/x/sync/semaphore"
)

// largeBody is the size over which a request body is large: it takes its
// bytes from the function's budget for large bodies before it is read.
// Typical events are under 2 KB; bodies up to this size are not counted,
// since even a full instance of them (80 at once) holds little.
const largeBody = 64 << 10

// bodyMemoryFactor is how many times its size a large body occupies in
// memory while it is handled: the body itself, the payload decoded from
// it, and for an error record its encoding and the client's copies of it
// in the append request (measured: a 12.4 MB push that becomes an error
// record allocates about 4 times its size in the handler and the BigQuery
// client).
const bodyMemoryFactor = 4

// bodyBudget bounds the bytes of large request bodies handled at once, so
// that a burst of large messages (Pub/Sub allows 10 MB) makes requests
// wait instead of getting the instance killed for memory. A request takes
// its body's size before reading it and gives it back when it is answered.
type bodyBudget struct {
	sem  *semaphore.Weighted
	size int64

	wait        time.Duration // how long a body may wait for its bytes
	readTimeout time.Duration // how long a body that has them may take to arrive
}

// newBodyBudget returns a budget of size bytes. A body waits at most 20 s
// for its bytes (deploy.sh gives a request 60 s), and then has 30 s to
// arrive.
func newBodyBudget(size int64) *bodyBudget {
	return &bodyBudget{sem: semaphore.NewWeighted(size), size: size, wait: 20 * time.Second, readTimeout: 30 * time.Second}
}

// largeBodyBudget is the budget for an instance that accepts bodies of up
// to maxRequest bytes under a Go memory limit of memLimit bytes
// (math.MaxInt64 for none): large bodies may use a quarter of the limit,
// leaving the rest to the metadata cache, which holds two tables during a
// refresh. Without a limit (local runs), four of the largest bodies at
// once. A body of maxRequest bytes always fits on its own.
func largeBodyBudget(maxRequest, memLimit int64) int64 {
	budget := 4 * maxRequest
	if memLimit != math.MaxInt64 {
		budget = memLimit / 4 / bodyMemoryFactor
	}
	return max(budget, maxRequest)
}

// acquire waits until n bytes of the budget are free and takes them, or
// returns ctx's error if it ends first.
func (b *bodyBudget) acquire(ctx context.Context, n int64) error {
	return b.sem.Acquire(ctx, min(n, b.size))
}

// release gives back n bytes taken by acquire.
func (b *bodyBudget) release(n int64) {
	b.sem.Release(min(n, b.size))
}
