package enrichevent

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
)

// traceKey is the attribute Cloud Logging reads to link a log line to its trace.
const traceKey = "logging.googleapis.com/trace"

// newLogger returns a JSON logger writing to w in Cloud Logging's shape:
// "severity" and "message" instead of slog's "level" and "msg", and
// WARNING rather than WARN. A message repeated many times a second is
// thinned out (loglimit.go).
func newLogger(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(newThinHandler(slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level:       level,
		ReplaceAttr: cloudLoggingAttr,
	})))
}

func cloudLoggingAttr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.MessageKey:
		a.Key = "message"
	case slog.LevelKey:
		a.Key = "severity"
		if l, ok := a.Value.Any().(slog.Level); ok && l == slog.LevelWarn {
			a.Value = slog.StringValue("WARNING")
		}
	}
	return a
}

// traceAttr returns the attribute that links a log line to the request's
// trace, from the W3C traceparent header or Cloud Run's
// X-Cloud-Trace-Context, or an empty attribute (which slog drops).
func traceAttr(project string, r *http.Request) slog.Attr {
	id := traceID(r)
	if id == "" {
		return slog.Attr{}
	}
	if project != "" {
		id = "projects/" + project + "/traces/" + id
	}
	return slog.String(traceKey, id)
}

func traceID(r *http.Request) string {
	// traceparent: version-traceid-parentid-flags, e.g. 00-4bf9...-00f0...-01
	if tp := r.Header.Get("traceparent"); tp != "" {
		parts := strings.Split(tp, "-")
		if len(parts) == 4 && len(parts[1]) == 32 {
			return parts[1]
		}
	}
	// X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=1
	if xc := r.Header.Get("X-Cloud-Trace-Context"); xc != "" {
		id, _, _ := strings.Cut(xc, "/")
		return id
	}
	return ""
}
