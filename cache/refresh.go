package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"
)

// startRefresh starts a background refresh unless one is running, a failed
// refresh is backing off, or the value was confirmed less than minAge ago.
// The checks are repeated after winning the flag, so callers that all saw
// the same expired snapshot start exactly one refresh.
func (c *Cache[T]) startRefresh(ctx context.Context, minAge time.Duration) bool {
	if c.backingOff(c.cfg.Now()) || !c.refreshing.CompareAndSwap(false, true) {
		return false
	}
	now := c.cfg.Now()
	cur := c.cur.Load()
	if c.backingOff(now) || now.Sub(cur.CheckedAt) < minAge {
		c.refreshing.Store(false)
		return false
	}
	c.begin()
	go func() {
		defer c.end()
		defer c.refreshing.Store(false) // runs first: the flag drops before Wait returns
		c.refresh(ctx, cur, true)
	}()
	return true
}

// refresh brings the value up to date with the source and records the
// outcome. cur is the snapshot it replaces, nil for the first load. It runs
// under ctx's values without its cancellation, bounded by LoadTimeout (and
// a first load by FirstLoadTimeout). A background refresh (background)
// is paced; one that requests wait for is not.
func (c *Cache[T]) refresh(ctx context.Context, cur *Snapshot[T], background bool) (*Snapshot[T], error) {
	timeout := c.cfg.LoadTimeout
	if cur == nil {
		timeout = min(timeout, c.cfg.FirstLoadTimeout)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	s, err := c.updateWithin(ctx, cur, timeout, background)
	if err != nil {
		c.fail(ctx, cur, err)
		return nil, err
	}
	return s, nil
}

// updateWithin runs update and returns when it does or when ctx is done,
// whichever comes first. A source that ignores its context (a read of a
// file on a hung NFS or FUSE mount cannot be cancelled) would otherwise
// hold the refresh flag, or the first load that every request joins, for
// ever. Such an update is left to finish on its own: its context done, it
// publishes nothing.
func (c *Cache[T]) updateWithin(ctx context.Context, cur *Snapshot[T], timeout time.Duration, paced bool) (*Snapshot[T], error) {
	type result struct {
		s   *Snapshot[T]
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := c.update(ctx, cur, paced)
		done <- result{s, err}
	}()
	select {
	case r := <-done:
		return r.s, r.err
	case <-ctx.Done():
		select {
		case r := <-done: // finished as the time ran out
			return r.s, r.err
		default:
			return nil, fmt.Errorf("%s did not answer within the load timeout (%v): %w",
				c.cfg.Source, timeout, context.Cause(ctx))
		}
	}
}

// update asks the source for its version: unchanged, it confirms cur;
// changed, it downloads. If the version is replaced between the two, it
// asks again and retries once.
func (c *Cache[T]) update(ctx context.Context, cur *Snapshot[T], paced bool) (*Snapshot[T], error) {
	for attempt := 1; ; attempt++ {
		v, err := c.cfg.Source.Stat(ctx)
		if err != nil {
			return nil, fmt.Errorf("stat %s: %w", c.cfg.Source, err)
		}
		if err := ctx.Err(); err != nil { // answered too late
			return nil, fmt.Errorf("stat %s: %w", c.cfg.Source, err)
		}
		if cur != nil && v.Same(cur.Version) {
			return c.confirm(ctx, cur), nil
		}
		prev := c.rejected.Load()
		rej := prev
		if rej != nil && !v.Same(rej.version) {
			rej = nil
		}
		// held: how long the source has been shrunk against cur, once
		// that is ShrinkWait; the guard then lets the shrink through.
		// Measured when the source answered, not after a download that
		// may take a minute.
		var held time.Duration
		now := c.cfg.Now()
		since, shrunk := c.shrunkSince(rej, prev, cur, now)
		if shrunk && now.Sub(since) >= c.cfg.ShrinkWait {
			held = now.Sub(since)
		}
		if rej != nil && held == 0 {
			if s := c.fallback(ctx, cur, rej, paced); s != nil {
				return s, nil
			}
			return c.stillRejected(ctx, cur, rej)
		}
		s, err := c.fetch(ctx, cur, v, held, paced)
		if attempt == 1 && errors.Is(err, ErrVersionGone) {
			continue
		}
		if errors.Is(err, ErrRejected) && rej == nil {
			rej = &rejection{version: v, err: err, at: now, shrink: errors.Is(err, errShrunk)}
			if shrunk && rej.shrink {
				rej.at = since // another version of the cut: the wait goes on
			}
			if cur != nil {
				rej.against = cur.Version
			}
			rejectedAt := c.cfg.Now()
			rej.logged.Store(&rejectedAt) // by fail, as "metadata rejected", or by fallback
			rej.seen.Store(&now)
			c.rejected.Store(rej)
			if s := c.fallback(ctx, cur, rej, paced); s != nil {
				return s, nil
			}
		}
		return s, err
	}
}

// shrunkSince returns since when the source has been shrunk against cur:
// rej is the rejection of the source's version (nil if it is new), prev
// the last rejection. For a shrink of this version, since it was first
// rejected. For a new version, since prev was, if prev is a shrink against
// the same value that a check saw less than two rechecks ago (two minutes
// at most): an export job may write the cut again more often than
// ShrinkWait, and while a version is rejected Get checks the source every
// recheck, so a good file between two cuts would have been seen, unless
// it stayed less than that. A shrink not seen that often (no requests)
// waits ShrinkWait again.
func (c *Cache[T]) shrunkSince(rej, prev *rejection, cur *Snapshot[T], now time.Time) (time.Time, bool) {
	switch {
	case cur == nil:
		return time.Time{}, false
	case rej != nil:
		return rej.at, rej.shrink
	case prev == nil || !prev.shrink || !prev.against.Same(cur.Version):
		return time.Time{}, false
	case now.Sub(*prev.seen.Load()) >= 2*c.recheck:
		return time.Time{}, false
	}
	return prev.at, true
}

// maxFallbacks bounds the older versions a first load tries.
const maxFallbacks = 3

// fallback is for a first load (cur nil) that found the source's version
// rejected: it loads the newest older version the source keeps (History:
// a GCS bucket with object versioning) that passes, at most maxFallbacks
// of them, so that an instance started after a bad upload serves what the
// warm instances kept rather than failing every request until a good file
// is uploaded. It returns nil for a refresh, a source without history, or
// when no older version passes. The rejection stays: refreshes do not
// download the rejected version again, and a newer version replaces the
// fallback as usual.
//
// Only a version that does not pass is skipped for the one before it. A
// passing failure (the listing, or a download cut by the network or the
// load's timeout) ends the search without an answer, and it is tried
// again after Backoff: skipping that version would serve older data than
// the warm instances have, kept until the next upload.
func (c *Cache[T]) fallback(ctx context.Context, cur *Snapshot[T], rej *rejection, paced bool) *Snapshot[T] {
	h, ok := c.cfg.Source.(History)
	if at := rej.fallbackAt.Load(); cur != nil || !ok || rej.noFallback.Load() || at != nil && c.cfg.Now().Before(*at) {
		return nil
	}
	unavailable := func(err error, attrs ...slog.Attr) {
		at := c.cfg.Now().Add(c.cfg.Backoff)
		rej.fallbackAt.Store(&at)
		attrs = append(attrs, slog.String("source", c.cfg.Source.String()),
			slog.String("error", err.Error()), slog.String("retry_in", c.cfg.Backoff.String()))
		c.logger().LogAttrs(ctx, slog.LevelWarn, "metadata history unavailable", attrs...)
	}
	older, err := h.Older(ctx, rej.version, maxFallbacks)
	if err != nil {
		unavailable(err)
		return nil
	}
	for _, v := range older {
		s, err := c.fetch(ctx, nil, v, 0, paced)
		switch {
		case err == nil:
			c.rejected.Store(rej) // publish cleared it
			msg := rej.err.Error()
			c.lastErr.Store(&msg) // as on a warm instance: the rejection stays the last error
			c.logger().LogAttrs(ctx, slog.LevelError, "metadata rejected; serving an older version",
				slog.String("source", c.cfg.Source.String()),
				slog.Int64("rejected_generation", rej.version.Generation),
				slog.Int64("generation", v.Generation),
				slog.String("error", msg))
			return s
		case errors.Is(err, ErrRejected), errors.Is(err, ErrVersionGone):
			c.logger().LogAttrs(ctx, slog.LevelWarn, "older metadata version not usable",
				slog.String("source", c.cfg.Source.String()),
				slog.Int64("generation", v.Generation), slog.String("error", err.Error()))
		default:
			unavailable(err, slog.Int64("generation", v.Generation))
			return nil
		}
	}
	rej.noFallback.Store(true) // the versions before it do not change: not again for this one
	return nil
}

// rejection is a version of the source that the cache rejected: bad data,
// which no retry of the download can fix. While the source still holds it,
// refreshes only ask for the version and do not download it again.
type rejection struct {
	version Version
	err     error
	// at is when this version was first rejected; for a shrink that
	// followed another of the same value closely (shrunkSince), when that
	// one was.
	at      time.Time
	against Version                   // the current value's version then; zero for a first load
	shrink  bool                      // by the shrink guard only: accepted once it has stayed ShrinkWait
	logged  atomic.Pointer[time.Time] // its last ERROR line
	seen    atomic.Pointer[time.Time] // the last check that found it the source's version
	// noFallback: no older version passed (or there is none), so a first
	// load retried while this version stays does not look again.
	noFallback atomic.Bool
	// fallbackAt: before it, a first load does not look for an older
	// version again, after a passing failure; nil: none.
	fallbackAt atomic.Pointer[time.Time]
}

// errStillRejected marks the error of a first load that found the source
// still at a version already rejected: it is not logged again.
var errStillRejected = errors.New("still the source's version, not downloaded again")

// stillRejected handles a source still at version rej.version, already
// rejected. A first load fails with the rejection again. A refresh keeps
// cur and counts as a check: the source answers, and cur is the best value
// it has, so cur is served (its CheckedAt renewed) rather than going stale,
// and the failure backoff starts again. The rejection is logged again at
// ERROR at most once per TTL (checks started by Miss come every
// MissInterval), at DEBUG otherwise.
func (c *Cache[T]) stillRejected(ctx context.Context, cur *Snapshot[T], rej *rejection) (*Snapshot[T], error) {
	if cur == nil {
		return nil, fmt.Errorf("%w (%w)", rej.err, errStillRejected)
	}
	s := *cur
	s.CheckedAt = c.cfg.Now()
	rej.seen.Store(&s.CheckedAt)
	c.cur.Store(&s) // not publish: the rejection stays the last error
	c.failStreak.Store(0)
	c.retryAt.Store(nil)
	c.checks.Add(1)
	attrs := []slog.Attr{
		slog.String("source", c.cfg.Source.String()),
		slog.Int64("rejected_generation", rej.version.Generation),
		slog.String("rejected_for", s.CheckedAt.Sub(rej.at).String()),
		slog.Int64("generation", cur.Version.Generation),
		slog.String("error", rej.err.Error()),
	}
	if rej.shrink {
		attrs = append(attrs, slog.String("accepted_in", (c.cfg.ShrinkWait-s.CheckedAt.Sub(rej.at)).String()))
	}
	level := slog.LevelDebug
	if last := rej.logged.Load(); s.CheckedAt.Sub(*last) >= c.cfg.TTL && rej.logged.CompareAndSwap(last, &s.CheckedAt) {
		level = slog.LevelError
	}
	c.logger().LogAttrs(ctx, level, "metadata still rejected", attrs...)
	return &s, nil
}

// confirm publishes cur again with a new CheckedAt: a metadata-only check.
func (c *Cache[T]) confirm(ctx context.Context, cur *Snapshot[T]) *Snapshot[T] {
	s := *cur
	s.CheckedAt = c.cfg.Now()
	c.publish(&s)
	c.checks.Add(1)
	c.logger().LogAttrs(ctx, slog.LevelDebug, "metadata unchanged",
		slog.String("source", c.cfg.Source.String()),
		slog.Int64("generation", s.Version.Generation),
		slog.String("loaded_age", s.CheckedAt.Sub(s.LoadedAt).String()))
	return &s
}

// fetch downloads and parses version v, checks it against the guard (its
// shrink limit too, unless the source has been shrunk for shrinkHeld) and
// publishes it.
func (c *Cache[T]) fetch(ctx context.Context, cur *Snapshot[T], v Version, shrinkHeld time.Duration, paced bool) (*Snapshot[T], error) {
	start := time.Now()
	value, n, paused, err := c.download(ctx, v, paced)
	if err != nil {
		return nil, err
	}
	size := c.size(value)
	err = c.guard(cur, v, size)
	if shrinkHeld > 0 && errors.Is(err, errShrunk) {
		c.logger().LogAttrs(ctx, slog.LevelWarn, "metadata shrink accepted",
			slog.String("source", c.cfg.Source.String()),
			slog.Int64("generation", v.Generation),
			slog.Int("size", size),
			slog.Int("previous_size", cur.size),
			slog.String("held_for", shrinkHeld.String()))
		err = c.guard(nil, v, size) // only that it has entries
	}
	if err != nil {
		c.rejections.Add(1)
		return nil, err
	}
	if err := ctx.Err(); err != nil { // read too late: updateWithin gave up
		return nil, fmt.Errorf("read %s generation %d: %w", c.cfg.Source, v.Generation, err)
	}
	now := c.cfg.Now()
	s := &Snapshot[T]{Value: value, Version: v, LoadedAt: now, CheckedAt: now, size: size}
	c.publish(s)
	c.loads.Add(1)
	attrs := []slog.Attr{
		slog.String("source", c.cfg.Source.String()),
		slog.Int64("generation", v.Generation),
		slog.Int("size", size),
		slog.Int64("bytes", n),
		slog.Int64("duration_ms", time.Since(start).Milliseconds()),
	}
	if paused > 0 {
		attrs = append(attrs, slog.Int64("paused_ms", paused.Milliseconds()))
	}
	if cur != nil {
		attrs = append(attrs, slog.Int64("previous_generation", cur.Version.Generation))
	}
	if c.cfg.Describe != nil {
		attrs = append(attrs, c.cfg.Describe(value)...)
	}
	c.logger().LogAttrs(ctx, slog.LevelInfo, "metadata loaded", attrs...)
	return s, nil
}

// download opens version v and parses it, counting the raw bytes read. A
// background refresh (paced) reads through a pacer and reports how long it
// slept. A version that downloads completely but does not parse is
// rejected, like one the guard refuses: it is bad data, not a passing
// failure.
func (c *Cache[T]) download(ctx context.Context, v Version, paced bool) (value T, n int64, paused time.Duration, err error) {
	rc, err := c.cfg.Source.Open(ctx, v)
	if err != nil {
		return value, 0, 0, fmt.Errorf("open %s generation %d: %w", c.cfg.Source, v.Generation, err)
	}
	defer rc.Close()
	c.downloads.Add(1)
	counted := &countingReader{r: rc}
	var r io.Reader = counted
	var p *pacer
	if paced && c.cfg.RefreshShare < 1 {
		sleep := func(d time.Duration) { c.sleep(ctx, d) }
		p = &pacer{r: counted, share: c.cfg.RefreshShare, clock: c.clock, sleep: sleep, budget: c.cfg.LoadTimeout / 2}
		r = p
	}
	value, err = c.parse(r, v)
	if p != nil {
		paused = p.slept
	}
	switch {
	case counted.err != nil: // the download failed, even if what arrived parsed: try again later
		if err == nil {
			err = counted.err
		}
		return value, counted.n, paused, fmt.Errorf("read %s generation %d: %w", c.cfg.Source, v.Generation, err)
	case err != nil: // every byte arrived and they do not parse: bad data
		c.rejections.Add(1)
		return value, counted.n, paused, fmt.Errorf("%w: parse %s generation %d: %w", ErrRejected, c.cfg.Source, v.Generation, err)
	}
	return value, counted.n, paused, nil
}

// parse calls Parse, turning a panic into an error: a file that trips a
// parser bug must fail one refresh, not crash every instance that loads it.
func (c *Cache[T]) parse(r io.Reader, v Version) (value T, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("parser panic: %v", p)
		}
	}()
	return c.cfg.Parse(r, v)
}

// errShrunk marks a version the guard rejected only for having shrunk.
var errShrunk = errors.New("accepted")

// guard rejects a new value with no entries, or with fewer than
// (1-MaxShrink) times the current value's entries.
func (c *Cache[T]) guard(cur *Snapshot[T], v Version, size int) error {
	if c.cfg.Size == nil {
		return nil
	}
	if size == 0 {
		return fmt.Errorf("%w: %s generation %d has no entries", ErrRejected, c.cfg.Source, v.Generation)
	}
	if cur != nil && float64(size) < (1-c.cfg.MaxShrink)*float64(cur.size) {
		return fmt.Errorf("%w: %s generation %d has %d entries, down from %d (max shrink %g; %w once it has stayed %s)",
			ErrRejected, c.cfg.Source, v.Generation, size, cur.size, c.cfg.MaxShrink, errShrunk, c.cfg.ShrinkWait)
	}
	return nil
}

func (c *Cache[T]) size(value T) int {
	if c.cfg.Size == nil {
		return 0
	}
	return c.cfg.Size(value)
}

// publish makes s the current snapshot and clears the failure state.
func (c *Cache[T]) publish(s *Snapshot[T]) {
	c.cur.Store(s)
	c.rejected.Store(nil)
	c.failStreak.Store(0)
	c.retryAt.Store(nil)
	c.lastErr.Store(nil)
}

// fail records a failed load or refresh: counters, backoff and one log line
// (ERROR for a first load or a rejected version, else WARNING).
func (c *Cache[T]) fail(ctx context.Context, cur *Snapshot[T], err error) {
	now := c.cfg.Now()
	c.failures.Add(1)
	msg := err.Error()
	c.lastErr.Store(&msg)
	delay := c.backoff(c.failStreak.Add(1))
	retryAt := now.Add(delay)
	c.retryAt.Store(&retryAt)
	attrs := []slog.Attr{
		slog.String("source", c.cfg.Source.String()),
		slog.String("error", msg),
	}
	if cur == nil {
		c.coldErr.Store(&coldFailure{err: err, at: now})
		if !errors.Is(err, errStillRejected) { // logged when first rejected
			c.logger().LogAttrs(ctx, slog.LevelError, "metadata load failed", attrs...)
		}
		return
	}
	attrs = append(attrs,
		slog.Int64("generation", cur.Version.Generation),
		slog.String("age", now.Sub(cur.CheckedAt).String()),
		slog.String("retry_in", delay.String()))
	level, text := slog.LevelWarn, "metadata refresh failed"
	if errors.Is(err, ErrRejected) {
		level, text = slog.LevelError, "metadata rejected"
	}
	c.logger().LogAttrs(ctx, level, text, attrs...)
}

// backoff is the wait after the n-th consecutive failure: Backoff doubled
// n-1 times, capped at TTL.
func (c *Cache[T]) backoff(n int64) time.Duration {
	d := c.cfg.Backoff
	for i := int64(1); i < n && d < c.cfg.TTL; i++ {
		d *= 2
	}
	return min(d, c.cfg.TTL)
}
