// Package cache holds a value shared by all invocations of a process, loaded
// from a Source and refreshed stale-while-revalidate.
//
// A Cache is safe for concurrent use. Readers get an immutable *Snapshot
// through an atomic pointer: a Get on a fresh value takes no lock and does
// not allocate. The first Get loads the value, and concurrent callers share
// that one load. Afterwards Get never waits: once the value is older than the
// TTL, the Get that notices starts one background refresh and returns the
// current snapshot at once. A refresh asks the source for its version first
// and downloads only when the version changed. A failed or rejected refresh
// keeps the last good value and backs off; a first load that finds the
// source's version rejected serves the newest older version the source
// keeps that passes, if it keeps any (History). A rejected version is not
// downloaded again while the source holds it: a check that finds it keeps
// the value as current (the source answers, and has nothing better), and
// Get checks again every minute (MissInterval or the TTL if shorter)
// rather than each TTL, so that a fix is found soon. A version rejected
// only for shrinking is accepted once the source has stayed shrunk for
// ShrinkWait (new versions of the cut seen soon enough included: see
// shrunkSince). Past MaxStaleness, Get checks the source before it answers
// (one check shared by concurrent callers) and fails with ErrStale if that
// fails or is backing off. A background refresh is paced: it sleeps between
// reads so that its parse takes at most Config.RefreshShare of its time and
// leaves the CPU to requests (pace.go).
//
// There is no janitor goroutine (Cloud Run throttles CPU outside requests):
// refreshes start only from Get and Miss, and run under the triggering
// context's values without its cancellation, bounded by LoadTimeout.
//
// Log lines (log/slog, attributes source, generation, ...): INFO "metadata
// loaded" once per new version (size, bytes, duration_ms and Config.Describe's
// attributes), DEBUG "metadata unchanged" per metadata-only check, WARNING
// "metadata refresh failed" (error, age, retry_in) when the source fails,
// ERROR "metadata rejected" when a new version does not parse or the guard
// refuses it, "metadata still rejected" at each check that finds it still
// there (ERROR at most once per TTL, else DEBUG), WARNING "metadata shrink
// accepted" after ShrinkWait, ERROR "metadata load failed" when the first
// load fails (once per version for a rejection), ERROR "metadata rejected;
// serving an older version" when a first load falls back to a version the
// source kept (History), with WARNING "older metadata version not usable"
// for one that does not pass, or "metadata history unavailable" (retry_in)
// when the search stopped at a passing failure, to be tried after Backoff.
package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// Defaults for the zero values of Config's fields.
const (
	defaultTTL          = time.Hour
	defaultMaxStaleness = 24 * time.Hour
	defaultMaxShrink    = 0.5
	defaultShrinkWait   = time.Hour
	defaultMissInterval = time.Minute
	defaultLoadTimeout  = 2 * time.Minute
	defaultFirstLoad    = 30 * time.Second
	defaultBackoff      = 30 * time.Second
	defaultRefreshShare = 0.1
)

// coldRetryInterval is how long a failed first load is reported to later
// callers before Get tries the source again, so that a burst of requests at a
// cold start with the source down does not turn into a burst of loads.
const coldRetryInterval = time.Second

// maxRecheck bounds how long Get waits to check the source again while its
// version is rejected (Cache.recheck), so that a fixed file is found soon,
// and two new versions of a cut seen in a row are at most minutes apart.
const maxRecheck = time.Minute

// ErrStale is wrapped by the error Get returns when the value was last
// confirmed current longer than MaxStaleness ago.
var ErrStale = errors.New("cache: value is stale")

// ErrRejected is wrapped by the refresh error when a new version is bad
// data: it downloads completely but does not parse, or it fails the guard
// (no entries, or shrunk by more than MaxShrink).
var ErrRejected = errors.New("cache: new version rejected")

// Config configures a Cache. Source and Parse are required; zero values of
// the other fields mean the defaults given.
type Config[T any] struct {
	// Source is where the value's bytes come from. Required.
	Source Source
	// Parse turns one version's bytes into a value. Required. A panic in
	// Parse fails that load like an error does.
	Parse func(r io.Reader, v Version) (T, error)
	// Size counts the entries of a value, for the guard and the logs; nil
	// disables the guard.
	Size func(T) int
	// Describe returns extra attributes for the load log line (for example
	// how many blank or duplicate ids were skipped); may be nil.
	Describe func(T) []slog.Attr

	// TTL is the age (since the last good load or check) after which a Get
	// starts a background refresh. Default 1h; at most half of
	// MaxStaleness, so that there is time for a background refresh (and
	// its retries) before requests must wait for one.
	TTL time.Duration
	// MaxStaleness is the age past which Get returns an error wrapping
	// ErrStale. Default 24h.
	MaxStaleness time.Duration
	// MaxShrink rejects a new value whose Size is below (1-MaxShrink) times
	// the current one; 1 or more allows any shrink. A Size of 0 is always
	// rejected. Default 0.5.
	MaxShrink float64
	// ShrinkWait is how long a version rejected only for shrinking past
	// MaxShrink must stay the source's version before a refresh accepts
	// it: a file cut short by mistake is usually replaced sooner, and a
	// deliberate cut needs no other action. A new version of the cut (an
	// export job may write it again meanwhile) keeps the wait of the one
	// before if a check saw that one less than two rechecks (two minutes
	// at most) before it saw the new one (shrunkSince). Default 1h.
	ShrinkWait time.Duration
	// MissInterval bounds Miss to one early version check per interval.
	// Default 1m.
	MissInterval time.Duration
	// LoadTimeout bounds every load and refresh. Default 2m.
	LoadTimeout time.Duration
	// FirstLoadTimeout bounds the first load, if shorter than LoadTimeout:
	// every request of a cold instance waits for it, so a download that
	// stalls is given up sooner, and tried again by a later request on a
	// new connection. Default 30s (a million devices load in about 2 s).
	FirstLoadTimeout time.Duration
	// Backoff is the wait after a failed refresh before the next attempt,
	// doubled per consecutive failure and capped at TTL. Default 30s.
	Backoff time.Duration
	// RefreshShare is the largest share of its wall time a background
	// refresh spends parsing: between reads it sleeps so that requests keep
	// the CPU (see pace.go). 1 or more disables pacing; the first load is
	// never paced. Default 0.1: a refresh takes about 10 times as long as
	// its parse (4.4 s for a million devices), and takes a tenth of one CPU
	// while it runs; at 0.2 the requests overlapping a refresh saw a
	// longer tail (BENCHMARKS.md, "p99 during metadata refreshes").
	RefreshShare float64

	Now    func() time.Time // nil means time.Now
	Logger *slog.Logger     // nil means slog.Default()
}

// Cache is a value loaded from a Source and shared across invocations. It is
// safe for concurrent use; see the package documentation for the contract.
type Cache[T any] struct {
	cfg Config[T]

	cur        atomic.Pointer[Snapshot[T]]
	cold       singleflight.Group          // the first load
	coldErr    atomic.Pointer[coldFailure] // the last failed first load
	refreshing atomic.Bool                 // a background refresh is running
	retryAt    atomic.Pointer[time.Time]   // no refresh starts before (backoff); nil: none
	failStreak atomic.Int64                // consecutive failed loads
	lastMiss   atomic.Pointer[time.Time]   // the last check started by Miss; nil: none
	lastErr    atomic.Pointer[string]      // the last failure, until a success
	rejected   atomic.Pointer[rejection]   // the last version rejected, until a success

	loads, checks, downloads, failures, rejections atomic.Int64

	mu      sync.Mutex // guards running
	idle    sync.Cond  // signalled when running drops to 0
	running int        // loads and refreshes in progress, for Wait

	// recheck is how often Get checks the source while its version is
	// rejected: the least of MissInterval, the TTL and maxRecheck.
	recheck time.Duration

	// The real clock and sleep that pace background refreshes (Config.Now
	// may be a test's fake clock, which parsing does not advance).
	clock func() time.Time
	sleep func(context.Context, time.Duration)
}

type coldFailure struct {
	err error
	at  time.Time
}

// New returns a Cache for cfg. It does no I/O: the first Get loads. It panics
// if cfg.Source or cfg.Parse is nil.
func New[T any](cfg Config[T]) *Cache[T] {
	if cfg.Source == nil || cfg.Parse == nil {
		panic("cache: Config.Source and Config.Parse are required")
	}
	setDefault(&cfg.TTL, defaultTTL)
	setDefault(&cfg.MaxStaleness, defaultMaxStaleness)
	setDefault(&cfg.MaxShrink, defaultMaxShrink)
	setDefault(&cfg.ShrinkWait, defaultShrinkWait)
	setDefault(&cfg.MissInterval, defaultMissInterval)
	setDefault(&cfg.LoadTimeout, defaultLoadTimeout)
	setDefault(&cfg.FirstLoadTimeout, defaultFirstLoad)
	setDefault(&cfg.Backoff, defaultBackoff)
	setDefault(&cfg.RefreshShare, defaultRefreshShare)
	cfg.TTL = min(cfg.TTL, cfg.MaxStaleness/2)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Cache[T]{cfg: cfg, clock: time.Now, sleep: sleepCtx, recheck: min(cfg.MissInterval, cfg.TTL, maxRecheck)}
	c.idle.L = &c.mu
	return c
}

func setDefault[V time.Duration | float64](p *V, def V) {
	if *p <= 0 {
		*p = def
	}
}

// Get returns the current snapshot. The first call loads it, waiting at most
// until ctx is done (the load itself goes on for other callers). Once a value
// is loaded Get never waits: if the value is older than TTL it starts a
// background refresh and returns the current snapshot; if it is older than
// MaxStaleness it returns an error wrapping ErrStale instead. A failed first
// load is returned as is, and reported to later callers for one second
// before the source is tried again.
func (c *Cache[T]) Get(ctx context.Context) (*Snapshot[T], error) {
	s := c.cur.Load()
	if s == nil {
		return c.load(ctx)
	}
	age := c.cfg.Now().Sub(s.CheckedAt)
	if age < c.recheck { // recheck is at most the TTL
		return s, nil
	}
	minAge := c.cfg.TTL
	if c.rejected.Load() != nil {
		// A fix of the rejected file, or the end of a shrink's wait,
		// is found within a minute, not an hour.
		minAge = c.recheck
	}
	if age < minAge {
		return s, nil
	}
	if age > c.cfg.MaxStaleness {
		return c.renew(ctx, s, age)
	}
	c.startRefresh(ctx, minAge)
	return s, nil
}

// renew refreshes stale snapshot s, whose age is age, before answering: an
// instance that saw no request for longer than MaxStaleness (a minimum
// instance at night) must not fail its first requests while the source is
// fine. Concurrent callers share the refresh, and each waits at most until
// its ctx is done. Backing off after a failure, or while a background
// refresh runs, it fails at once with ErrStale.
func (c *Cache[T]) renew(ctx context.Context, s *Snapshot[T], age time.Duration) (*Snapshot[T], error) {
	if c.backingOff(c.cfg.Now()) {
		return nil, c.staleError(age)
	}
	c.begin()
	ch := c.cold.DoChan("renew", func() (any, error) {
		// singleflight merges only overlapping calls: a caller that
		// checked the backoff before a flight failed may start the next
		// one after it, which must not try the source again at once.
		if c.backingOff(c.cfg.Now()) {
			return nil, errRefreshing
		}
		if !c.refreshing.CompareAndSwap(false, true) {
			return nil, errRefreshing
		}
		defer c.refreshing.Store(false)
		if now := c.cur.Load(); now != s { // renewed just before
			return now, nil
		}
		return c.refresh(ctx, s, false) // requests wait for it: not paced
	})
	select {
	case r := <-ch:
		c.end()
		if r.Err != nil {
			return nil, c.staleError(age)
		}
		return r.Val.(*Snapshot[T]), nil
	case <-ctx.Done():
		go func() { <-ch; c.end() }()
		return nil, c.staleError(age)
	}
}

// errRefreshing is what renew's flight reports when a background refresh
// is already running, or a failed one is backing off: the caller answers
// ErrStale.
var errRefreshing = errors.New("cache: a refresh is running")

// load performs the first load, shared by concurrent callers.
func (c *Cache[T]) load(ctx context.Context) (*Snapshot[T], error) {
	if f := c.coldErr.Load(); f != nil && c.cfg.Now().Sub(f.at) < coldRetryInterval {
		return nil, f.err
	}
	c.begin()
	ch := c.cold.DoChan("load", func() (any, error) {
		// singleflight merges only overlapping calls: a flight that
		// starts just after another published must not load again, nor
		// one that starts just after another failed.
		if s := c.cur.Load(); s != nil {
			return s, nil
		}
		if f := c.coldErr.Load(); f != nil && c.cfg.Now().Sub(f.at) < coldRetryInterval {
			return nil, f.err
		}
		return c.refresh(ctx, nil, false)
	})
	select {
	case r := <-ch:
		c.end()
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*Snapshot[T]), nil
	case <-ctx.Done():
		go func() { <-ch; c.end() }()
		return nil, fmt.Errorf("load %s: %w", c.cfg.Source, ctx.Err())
	}
}

// Miss records that a lookup in the current value missed: the source may
// have a newer version. It starts a background version check unless the
// value was confirmed or Miss started a check less than MissInterval ago, a
// refresh is running, or a failed refresh is backing off. It never waits.
func (c *Cache[T]) Miss() {
	s := c.cur.Load()
	if s == nil {
		return
	}
	now := c.cfg.Now()
	last := c.lastMiss.Load()
	if now.Sub(s.CheckedAt) < c.cfg.MissInterval || last != nil && now.Sub(*last) < c.cfg.MissInterval {
		return
	}
	at := now // on the heap only past the checks
	if c.lastMiss.CompareAndSwap(last, &at) {
		c.startRefresh(context.Background(), c.cfg.MissInterval)
	}
}

// Wait blocks until no load or refresh started by Get or Miss is running:
// for tests and shutdown.
func (c *Cache[T]) Wait() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.running > 0 {
		c.idle.Wait()
	}
}

func (c *Cache[T]) begin() {
	c.mu.Lock()
	c.running++
	c.mu.Unlock()
}

func (c *Cache[T]) end() {
	c.mu.Lock()
	c.running--
	if c.running == 0 {
		c.idle.Broadcast()
	}
	c.mu.Unlock()
}

// backingOff reports whether a failed refresh's backoff lasts at now. The
// instants the cache keeps are time.Time values, compared on the monotonic
// clock: a wall clock stepped back must not hold a backoff (and the
// requests of a stale value) for the length of the step.
func (c *Cache[T]) backingOff(now time.Time) bool {
	r := c.retryAt.Load()
	return r != nil && now.Before(*r)
}

func (c *Cache[T]) staleError(age time.Duration) error {
	err := fmt.Errorf("%w: %s last confirmed %s ago (max staleness %s)",
		ErrStale, c.cfg.Source, age, c.cfg.MaxStaleness)
	if last := c.lastErr.Load(); last != nil {
		err = fmt.Errorf("%w; last error: %s", err, *last)
	}
	return err
}

func (c *Cache[T]) logger() *slog.Logger {
	if c.cfg.Logger != nil {
		return c.cfg.Logger
	}
	return slog.Default()
}
