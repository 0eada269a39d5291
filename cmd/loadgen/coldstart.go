package main

import (
	"bufio"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// coldRun is one cold start: a fresh function process, one request, and a
// second one for comparison. Durations count from the process start (t0),
// the first accepted connection (listen) or the first request's send.
type coldRun struct {
	listen    time.Duration // t0 → the server accepts a connection
	loadSeen  time.Duration // request sent → "metadata loaded" read on stderr
	load      time.Duration // the function's own duration_ms of that load
	rowSeen   time.Duration // request sent → the row read on stdout
	answered  time.Duration // request sent → 204 read
	total     time.Duration // t0 → 204 read
	warm      time.Duration // a second request, sent → 204 read
	bytes     int64         // metadata bytes loaded
	processed bool          // the first answer was 204
}

// firstWrite is a writer that notes when it is first written to.
type firstWrite struct {
	mu sync.Mutex
	at time.Time
}

func (f *firstWrite) Write(p []byte) (int, error) {
	f.mu.Lock()
	if f.at.IsZero() {
		f.at = time.Now()
	}
	f.mu.Unlock()
	return len(p), nil
}

func (f *firstWrite) when() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.at
}

// coldStarts starts the function runs times, each with a fresh copy of
// a metadata file of about size bytes, and measures each first request.
func coldStarts(bin, dir, shape string, size, runs int) ([]coldRun, error) {
	data, devices := metadataCSV(devicesForBytes(size), 0)
	path := filepath.Join(dir, "cold.csv")
	if err := writeAtomic(path, data); err != nil {
		return nil, err
	}
	var out []coldRun
	for i := range runs {
		r, err := coldStart(bin, path, shape, devices, i)
		if err != nil {
			return out, fmt.Errorf("cold start %d: %w", i+1, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func coldStart(bin, metadata, shape string, devices []string, num int) (coldRun, error) {
	var r coldRun
	stdout := &firstWrite{}
	s, err := startServer(bin, nil, functionEnv(metadata, "1h"), stdout, nil)
	if err != nil {
		return r, err
	}
	defer s.stop()
	conn, listening, err := s.waitListening(30 * time.Second)
	if err != nil {
		return r, err
	}
	defer conn.Close()
	r.listen = listening.Sub(s.started)
	tmpl, err := buildTemplates(shape, s.addr, devices[num%len(devices):], 1, 0)
	if err != nil {
		return r, err
	}
	br := bufio.NewReader(conn)
	send := func(seq uint64) (time.Time, time.Duration, int, error) {
		start := time.Now()
		if _, err := conn.Write(tmpl[0].appendTo(nil, 999, num, seq)); err != nil {
			return start, 0, 0, err
		}
		code, _, err := readResponse(br)
		return start, time.Since(start), code, err
	}
	sent, answered, code, err := send(0)
	if err != nil {
		return r, err
	}
	r.answered, r.total, r.processed = answered, sent.Add(answered).Sub(s.started), code == 204
	if _, r.warm, _, err = send(1); err != nil {
		return r, err
	}
	// The log line and the row were written before the answer; their
	// readers may lag a little.
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if len(s.loadLines()) > 0 && !stdout.when().IsZero() {
			break
		}
	}
	if lines := s.loadLines(); len(lines) > 0 {
		r.loadSeen = lines[0].seen.Sub(sent)
		r.load = time.Duration(lines[0].DurationMS) * time.Millisecond
		r.bytes = lines[0].Bytes
	}
	if at := stdout.when(); !at.IsZero() {
		r.rowSeen = at.Sub(sent)
	}
	return r, nil
}

// printColdStarts reports the median of each measure over the runs, and
// its range.
func printColdStarts(w io.Writer, runs []coldRun) {
	if len(runs) == 0 {
		return
	}
	ok := 0
	for _, r := range runs {
		if r.processed {
			ok++
		}
	}
	fmt.Fprintf(w, "\ncold start, %d runs, %.2f MB of metadata (CSV, %d answered 204); median [min–max]:\n",
		len(runs), float64(runs[0].bytes)/1e6, ok)
	row := func(label string, get func(coldRun) time.Duration) {
		var ds []time.Duration
		for _, r := range runs {
			ds = append(ds, get(r))
		}
		slices.Sort(ds)
		fmt.Fprintf(w, "  %-58s %8s  [%s–%s]\n", label, ms(ds[len(ds)/2]), ms(ds[0]), ms(ds[len(ds)-1]))
	}
	row("process start → first enriched row answered (204)", func(r coldRun) time.Duration { return r.total })
	row("  process start → listening (exec, init, Setup, listen)", func(r coldRun) time.Duration { return r.listen })
	row("  first request → 204", func(r coldRun) time.Duration { return r.answered })
	row("    metadata download+parse+swap (log duration_ms)", func(r coldRun) time.Duration { return r.load })
	row("    request sent → \"metadata loaded\" line read", func(r coldRun) time.Duration { return r.loadSeen })
	row("    \"metadata loaded\" read → row line read on stdout", func(r coldRun) time.Duration { return r.rowSeen - r.loadSeen })
	row("    row line read → 204 read", func(r coldRun) time.Duration { return r.answered - r.rowSeen })
	row("  a second request, warm → 204", func(r coldRun) time.Duration { return r.warm })
}
