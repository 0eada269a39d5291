package cache

import "time"

// Snapshot is one published state of a Cache. It is immutable once
// published: readers may keep it for as long as they need a consistent view.
type Snapshot[T any] struct {
	Value   T
	Version Version
	// LoadedAt is when this value was parsed and published.
	LoadedAt time.Time
	// CheckedAt is the last time the source confirmed the value current
	// (its load, or a check that found the version unchanged). TTL and
	// MaxStaleness count from here.
	CheckedAt time.Time

	size int // Config.Size(Value), computed once
}

// Stats is a point-in-time report of a Cache, for logs and status pages.
type Stats struct {
	Loads      int64 // new versions parsed and published
	Checks     int64 // refreshes that found the version unchanged (no download)
	Downloads  int64 // versions opened for reading
	Failures   int64 // failed loads and refreshes, rejections included
	Rejections int64 // new versions refused by the guard

	Version   Version       // of the current value; zero before the first load
	Size      int           // Config.Size of the current value (0 if Size is nil)
	LoadedAt  time.Time     // of the current value
	CheckedAt time.Time     // of the current value
	Age       time.Duration // since CheckedAt
	LastError string        // the last failure, cleared by a success
}

// Stats reports the counters and the current value's version and age.
func (c *Cache[T]) Stats() Stats {
	st := Stats{
		Loads:      c.loads.Load(),
		Checks:     c.checks.Load(),
		Downloads:  c.downloads.Load(),
		Failures:   c.failures.Load(),
		Rejections: c.rejections.Load(),
	}
	if last := c.lastErr.Load(); last != nil {
		st.LastError = *last
	}
	if s := c.cur.Load(); s != nil {
		st.Version = s.Version
		st.Size = s.size
		st.LoadedAt = s.LoadedAt
		st.CheckedAt = s.CheckedAt
		st.Age = c.cfg.Now().Sub(s.CheckedAt)
	}
	return st
}
