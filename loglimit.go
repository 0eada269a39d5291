package enrichevent

import (
	"log/slog"
	"sync"
	"time"
)

// Log lines that repeat for every delivery during an outage are thinned out:
// a burst of logBurst lines, then one each logEvery. Without it, an instance
// taking 1,000 events a second while BigQuery is down logs 1,000 ERROR lines
// a second, and Cloud Logging bills every one.
const (
	logBurst = 10
	logEvery = time.Second
)

// logLimit is a token bucket for one log line. The zero value is ready, with
// a full bucket.
type logLimit struct {
	mu         sync.Mutex
	started    bool
	tokens     float64
	last       time.Time
	suppressed int
}

// allow reports whether the line may be logged at now, and if so returns the
// attribute counting the lines left out since the last one logged (empty
// when none were, which slog drops).
func (l *logLimit) allow(now time.Time) (bool, slog.Attr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.started {
		l.started, l.tokens, l.last = true, logBurst, now
	}
	if d := now.Sub(l.last); d > 0 {
		l.tokens = min(logBurst, l.tokens+float64(d)/float64(logEvery))
		l.last = now
	}
	if l.tokens < 1 {
		l.suppressed++
		return false, slog.Attr{}
	}
	l.tokens--
	n := l.suppressed
	l.suppressed = 0
	if n == 0 {
		return true, slog.Attr{}
	}
	return true, slog.Int("suppressed", n)
}
