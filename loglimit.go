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
// ("suppressed"). Lines left out at the end of a burst are counted by a
// summary line (the message, "suppressed" and "summary": true) once the
// message has been quiet for logEvery, and at SIGTERM (flushThinned).
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
	return &thinHandler{Handler: next, lines: &thinLines{
		now: time.Now, after: func(d time.Duration, f func()) { time.AfterFunc(d, f) },
		out: next, byMessage: make(map[lineKey]*logLimit),
	}}
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

// flushThinned logs the summary of every message with lines left out, quiet
// or not: the process is about to stop (drain.go).
func flushThinned(log *slog.Logger) {
	if h, ok := log.Handler().(*thinHandler); ok {
		h.lines.summarize(true)
	}
}

// thinLines holds a token bucket per message and level (a message logged
// at DEBUG does not use up the tokens of its ERROR lines).
type thinLines struct {
	now       func() time.Time
	after     func(time.Duration, func()) // time.AfterFunc
	out       slog.Handler                // where summary lines go
	mu        sync.Mutex
	byMessage map[lineKey]*logLimit
	scheduled bool // a summarize is due
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
	ok, n := l.allow(now)
	if !ok && !t.scheduled {
		t.schedule()
	}
	return ok, n
}

// schedule has summarize run logEvery from now. t.mu is held.
func (t *thinLines) schedule() {
	t.scheduled = true
	t.after(logEvery, func() { t.summarize(false) })
}

// summarize logs a summary line for each message whose left-out lines no
// later line has counted, once it has been quiet for logEvery (all: at
// once), and comes back later for the others.
func (t *thinLines) summarize(all bool) {
	type summary struct {
		lineKey
		suppressed int
	}
	now := t.now()
	var due []summary
	pending := false
	t.mu.Lock()
	for k, l := range t.byMessage {
		switch {
		case l.suppressed == 0:
		case all || now.Sub(l.dropped) >= logEvery:
			due = append(due, summary{k, l.suppressed})
			l.suppressed = 0
			l.take(now)
		default:
			pending = true
		}
	}
	t.scheduled = false
	if pending {
		t.schedule()
	}
	t.mu.Unlock()
	for _, s := range due {
		r := slog.NewRecord(now, s.level, s.msg, 0)
		r.AddAttrs(slog.Int("suppressed", s.suppressed), slog.Bool("summary", true))
		_ = t.out.Handle(context.Background(), r) // as slog.Logger does with a handler's error
	}
}

// logLimit is the token bucket of one message: logBurst tokens, refilled
// at one per logEvery.
type logLimit struct {
	tokens     float64
	last       time.Time
	suppressed int       // lines left out since the last one logged
	dropped    time.Time // when the last was left out
}

func (l *logLimit) allow(now time.Time) (bool, int) {
	if !l.take(now) {
		l.suppressed++
		l.dropped = now
		return false, 0
	}
	n := l.suppressed
	l.suppressed = 0
	return true, n
}

// take takes a token if there is one.
func (l *logLimit) take(now time.Time) bool {
	if d := now.Sub(l.last); d > 0 { // a clock that goes back refills nothing
		l.tokens = min(logBurst, l.tokens+float64(d)/float64(logEvery))
		l.last = now
	}
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}
