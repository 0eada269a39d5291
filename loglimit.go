package enrichevent

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// A log line that repeats for every delivery during an outage, or while a
// publisher sends bad input, is thinned out: each message (at each level)
// is logged for a burst of logBurst lines, then once each logEvery, per
// instance. Without it, an instance taking 1,000 events a second while
// BigQuery is down logs 1,000 ERROR lines a second, and Cloud Logging bills
// every one. The first line logged after some were left out says how many
// ("suppressed").
const (
	logBurst = 10
	logEvery = time.Second
	// maxThinned bounds the messages followed. The function's messages
	// are constants, a few dozen; any beyond are logged unthinned.
	maxThinned = 256
)

// thinHandler thins out the records of a slog.Handler by message and level.
type thinHandler struct {
	slog.Handler
	lines *thinLines // shared by the handlers WithAttrs and WithGroup make
}

func newThinHandler(next slog.Handler) *thinHandler {
	return &thinHandler{Handler: next, lines: &thinLines{now: time.Now, byMessage: make(map[lineKey]*logLimit)}}
}

func (h *thinHandler) Handle(ctx context.Context, r slog.Record) error {
	ok, suppressed := h.lines.allow(r.Level, r.Message)
	if !ok {
		return nil
	}
	if suppressed > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed", suppressed))
	}
	return h.Handler.Handle(ctx, r)
}

func (h *thinHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &thinHandler{Handler: h.Handler.WithAttrs(attrs), lines: h.lines}
}

func (h *thinHandler) WithGroup(name string) slog.Handler {
	return &thinHandler{Handler: h.Handler.WithGroup(name), lines: h.lines}
}

// thinLines holds a token bucket per message and level (a message logged
// at DEBUG does not use up the tokens of its ERROR lines).
type thinLines struct {
	now       func() time.Time
	mu        sync.Mutex
	byMessage map[lineKey]*logLimit
}

type lineKey struct {
	level slog.Level
	msg   string
}

// allow reports whether a line with message msg at level may be logged now,
// and if so how many such lines were left out since the last one logged.
func (t *thinLines) allow(level slog.Level, msg string) (bool, int) {
	now := t.now()
	k := lineKey{level, msg}
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.byMessage[k]
	if l == nil {
		if len(t.byMessage) >= maxThinned {
			return true, 0
		}
		l = &logLimit{tokens: logBurst, last: now}
		t.byMessage[k] = l
	}
	return l.allow(now)
}

// logLimit is the token bucket of one message: logBurst tokens, refilled
// at one per logEvery.
type logLimit struct {
	tokens     float64
	last       time.Time
	suppressed int
}

func (l *logLimit) allow(now time.Time) (bool, int) {
	if d := now.Sub(l.last); d > 0 { // a clock that goes back refills nothing
		l.tokens = min(logBurst, l.tokens+float64(d)/float64(logEvery))
		l.last = now
	}
	if l.tokens < 1 {
		l.suppressed++
		return false, 0
	}
	l.tokens--
	n := l.suppressed
	l.suppressed = 0
	return true, n
}
