package enrichevent

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"testing"
)

func TestLoggerCloudLoggingShape(t *testing.T) {
	var buf bytes.Buffer
	log := newLogger(&buf, slog.LevelInfo)
	r := httptest.NewRequest("POST", "/", nil)
	r.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	log.Warn("refresh failed", "error", "boom", traceAttr("proj", r))
	log.Debug("not shown")

	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("log output %q is not one JSON line: %v", buf.String(), err)
	}
	want := map[string]any{
		"severity": "WARNING",
		"message":  "refresh failed",
		"error":    "boom",
		traceKey:   "projects/proj/traces/4bf92f3577b34da6a3ce929d0e0e4736",
	}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("log line[%q] = %v, want %v (line %s)", k, line[k], v, buf.String())
		}
	}
	for _, k := range []string{"level", "msg"} {
		if _, ok := line[k]; ok {
			t.Errorf("log line has slog's %q key: %s", k, buf.String())
		}
	}
}

func TestTraceAttr(t *testing.T) {
	tests := []struct {
		name, header, value, project, want string
	}{
		{"traceparent", "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "p", "projects/p/traces/4bf92f3577b34da6a3ce929d0e0e4736"},
		{"cloud trace context", "X-Cloud-Trace-Context", "105445aa7843bc8bf206b12000100000/1;o=1", "p", "projects/p/traces/105445aa7843bc8bf206b12000100000"},
		{"no project", "X-Cloud-Trace-Context", "abc/1", "", "abc"},
		{"malformed traceparent", "traceparent", "garbage", "p", ""},
		{"none", "", "", "p", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", nil)
			if tt.header != "" {
				r.Header.Set(tt.header, tt.value)
			}
			a := traceAttr(tt.project, r)
			got := ""
			if a.Key != "" {
				got = a.Value.String()
			}
			if got != tt.want {
				t.Errorf("traceAttr(%s: %q) = %q, want %q", tt.header, tt.value, got, tt.want)
			}
		})
	}
}
