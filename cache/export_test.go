package cache

import (
	"context"
	"testing"
	"time"
)

// Running reports how many loads and refreshes are in progress, counting
// each caller waiting for a shared first load.
func Running[T any](c *Cache[T]) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.running
}

// StartRefresh calls startRefresh as a Get or Miss that saw an old snapshot
// would, possibly after another refresh already replaced it.
func StartRefresh[T any](c *Cache[T], minAge time.Duration) bool {
	return c.startRefresh(context.Background(), minAge)
}

// SetPacing replaces the real clock and sleep that pace background
// refreshes.
func SetPacing[T any](c *Cache[T], clock func() time.Time, sleep func(time.Duration)) {
	c.clock = clock
	c.sleep = func(_ context.Context, d time.Duration) { sleep(d) }
}

// SetGCSStatTimeout replaces the bound of a GCS source's Stat until the
// test ends.
func SetGCSStatTimeout(t *testing.T, d time.Duration) {
	old := gcsStatTimeout
	gcsStatTimeout = d
	t.Cleanup(func() { gcsStatTimeout = old })
}

// HoldRunning locks the mutex that begin and end take, until the returned
// func is called: a Get that has passed its checks waits there.
func HoldRunning[T any](c *Cache[T]) (release func()) {
	c.mu.Lock()
	return c.mu.Unlock
}
