package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// result summarises one phase.
type result struct {
	name      string
	duration  time.Duration
	samples   []sample // sorted by latency
	non2xx    map[int]int64
	transport int64
	lastErr   error
	serverCPU time.Duration // of the server process, during the recorded time; -1 if unknown
	selfCPU   time.Duration // of loadgen, during the recorded time
	machine   cpuTicks      // the machine's CPU time during the recorded time; zero if unknown
	load      string        // load average at the end
}

// cpuTicks is CPU time of the whole machine, in clock ticks (see
// machineCPU).
type cpuTicks struct{ idle, steal, total int64 }

func (t cpuTicks) sub(u cpuTicks) cpuTicks {
	return cpuTicks{t.idle - u.idle, t.steal - u.steal, t.total - u.total}
}

// share returns n as a percentage of t's total time, or "-" if unknown.
func (t cpuTicks) share(n int64) string {
	if t.total <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(t.total))
}

func summarise(name string, d time.Duration, tallies []tally) *result {
	r := &result{name: name, duration: d, non2xx: map[int]int64{}, load: loadAverage()}
	for _, t := range tallies {
		r.samples = append(r.samples, t.samples...)
		for code, n := range t.non2xx {
			r.non2xx[code] += n
		}
		r.transport += t.transport
		if t.lastErr != nil {
			r.lastErr = t.lastErr
		}
	}
	sortByLatency(r.samples)
	return r
}

func sortByLatency(s []sample) {
	slices.SortFunc(s, func(a, b sample) int { return int(a.lat - b.lat) })
}

// throughput is answered requests per second.
func (r *result) throughput() float64 {
	return float64(len(r.samples)) / r.duration.Seconds()
}

// percentile returns the latency below which fraction q of s (sorted by
// latency) lies.
func percentile(s []sample, q float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	i := min(len(s)-1, int(q*float64(len(s))))
	return time.Duration(s[i].lat)
}

func (r *result) errors() int64 {
	n := r.transport
	for _, c := range r.non2xx {
		n += c
	}
	return n
}

// perRequest divides a CPU time among the answered requests.
func (r *result) perRequest(cpu time.Duration) string {
	if cpu < 0 || len(r.samples) == 0 {
		return "-"
	}
	return us(cpu / time.Duration(len(r.samples)))
}

const tableHeader = "%-22s %9s %9s %8s %8s %8s %8s %7s %9s %10s %10s %6s %6s  %s\n"

func printHeader(w io.Writer) {
	fmt.Fprintf(w, tableHeader, "phase", "requests", "req/s", "p50", "p90", "p99", "max",
		"non-2xx", "transport", "server-cpu", "loadgen-cpu", "idle", "steal", "load avg")
	fmt.Fprintf(w, tableHeader, "", "", "", "", "", "", "", "", "errors", "per req", "per req", "of all", "of all", "")
}

func (r *result) print(w io.Writer) {
	fmt.Fprintf(w, tableHeader, r.name, fmt.Sprint(len(r.samples)), fmt.Sprintf("%.0f", r.throughput()),
		ms(percentile(r.samples, 0.50)), ms(percentile(r.samples, 0.90)), ms(percentile(r.samples, 0.99)),
		ms(percentile(r.samples, 1)), fmt.Sprint(r.errors()-r.transport), fmt.Sprint(r.transport),
		r.perRequest(r.serverCPU), r.perRequest(r.selfCPU), r.machine.share(r.machine.idle),
		r.machine.share(r.machine.steal), r.load)
	if len(r.non2xx) > 0 {
		var codes []string
		for _, c := range slices.Sorted(maps.Keys(r.non2xx)) {
			codes = append(codes, fmt.Sprintf("%d×%d", r.non2xx[c], c))
		}
		fmt.Fprintf(w, "  non-2xx answers: %s\n", strings.Join(codes, ", "))
	}
	if r.lastErr != nil {
		fmt.Fprintf(w, "  last transport error: %v\n", r.lastErr)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/1e6) }
func us(d time.Duration) string { return fmt.Sprintf("%.1fµs", float64(d)/1e3) }
