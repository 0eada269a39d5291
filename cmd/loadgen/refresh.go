package main

import (
	"fmt"
	"io"
	"time"
)

// window is when the function was downloading and parsing a new metadata
// version: from the "metadata loaded" line's time back by its duration_ms,
// widened by the log's millisecond precision.
type window struct{ from, to int64 } // unix ns

func refreshWindows(lines []loadLine) []window {
	var ws []window
	for _, l := range lines {
		end := l.Time.Add(time.Millisecond)
		start := l.Time.Add(-time.Duration(l.DurationMS+1) * time.Millisecond)
		ws = append(ws, window{start.UnixNano(), end.UnixNano()})
	}
	return ws
}

// splitByWindows returns the samples whose request overlapped a window,
// and the others; both sorted by latency, as s is.
func splitByWindows(s []sample, ws []window) (during, outside []sample) {
	for _, x := range s {
		hit := false
		for _, w := range ws {
			if x.start < w.to && x.start+x.lat > w.from {
				hit = true
				break
			}
		}
		if hit {
			during = append(during, x)
		} else {
			outside = append(outside, x)
		}
	}
	return during, outside
}

// printRefresh reports p99 during the refreshes of the refresh phase
// against the steady phase's.
func printRefresh(w io.Writer, steady, refresh *result, lines []loadLine, rewrites int64) {
	ws := refreshWindows(lines)
	during, outside := splitByWindows(refresh.samples, ws)
	var parse time.Duration
	var bytes int64
	for _, l := range lines {
		parse += time.Duration(l.DurationMS) * time.Millisecond
		bytes = l.Bytes
	}
	fmt.Fprintf(w, "\nrefreshes: %d file rewrites; new versions loaded by the function during the phase: %d", rewrites, len(lines))
	if len(lines) > 0 {
		fmt.Fprintf(w, " (%.1f MB each, mean download+parse+swap %v)", float64(bytes)/1e6, (parse / time.Duration(len(lines))).Round(time.Millisecond))
	}
	fmt.Fprintln(w)
	p99 := percentile(steady.samples, 0.99)
	fmt.Fprintf(w, "  p99 steady (phase %q):                %s\n", steady.name, ms(p99))
	fmt.Fprintf(w, "  p99 whole refresh phase:               %s  (%.2f× steady)\n",
		ms(percentile(refresh.samples, 0.99)), ratio(percentile(refresh.samples, 0.99), p99))
	fmt.Fprintf(w, "  p99 of %6d requests during a refresh: %s  (%.2f× steady; target <= 1.2×)\n",
		len(during), ms(percentile(during, 0.99)), ratio(percentile(during, 0.99), p99))
	fmt.Fprintf(w, "  p99 of %6d requests outside:          %s  (%.2f× steady)\n",
		len(outside), ms(percentile(outside, 0.99)), ratio(percentile(outside, 0.99), p99))
	fmt.Fprintf(w, "  max during a refresh: %s, max steady: %s\n", ms(percentile(during, 1)), ms(percentile(steady.samples, 1)))
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
