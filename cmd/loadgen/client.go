package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// phase is one timed run of the workers against one server.
type phase struct {
	name      string
	num       int // distinguishes the message ids of phases
	addr      string
	templates []template
	clients   int
	rate      float64 // requests per second in all; 0: each client as fast as it can
	warmup    time.Duration
	duration  time.Duration
}

// sample is one answered request.
type sample struct {
	start int64 // wall clock, unix ns: when it was sent, or scheduled
	lat   int64 // ns until the whole response was read
}

// tally is what one worker saw.
type tally struct {
	samples   []sample
	non2xx    map[int]int64
	transport int64
	lastErr   error
}

// run drives p.addr with p.clients keep-alive connections, each sending
// one request at a time: for p.warmup unrecorded, then for p.duration.
// With a rate, each client sends on a fixed schedule and latency counts
// from the scheduled time, so that a slow server cannot hide its queue
// (no coordinated omission).
func (p *phase) run() []tally {
	tallies := make([]tally, p.clients)
	begin := time.Now()
	record := begin.Add(p.warmup)
	end := record.Add(p.duration)
	var wg sync.WaitGroup
	for w := range p.clients {
		wg.Go(func() {
			wk := &worker{phase: p, num: w, t: &tallies[w], record: record, end: end}
			wk.t.non2xx = map[int]int64{}
			wk.t.samples = make([]sample, 0, 4096)
			if p.rate > 0 {
				wk.interval = time.Duration(float64(p.clients) / p.rate * 1e9)
				wk.next = begin.Add(wk.interval * time.Duration(w) / time.Duration(p.clients))
			}
			wk.loop()
			wk.close()
		})
	}
	wg.Wait()
	return tallies
}

// worker is one client: one connection at a time, one request at a time.
type worker struct {
	phase       *phase
	num         int
	t           *tally
	record, end time.Time
	interval    time.Duration // 0: closed loop
	next        time.Time     // the next scheduled send

	conn net.Conn
	br   *bufio.Reader
	buf  []byte
	seq  uint64
}

func (w *worker) loop() {
	for {
		start := time.Now()
		if w.interval > 0 {
			if d := w.next.Sub(start); d > 0 {
				time.Sleep(d)
			}
			start = w.next
			w.next = w.next.Add(w.interval)
		}
		if !start.Before(w.end) {
			return
		}
		code, err := w.do()
		lat := time.Since(start)
		if err != nil {
			time.Sleep(10 * time.Millisecond) // do not spin on a refused connection
		}
		if start.Before(w.record) {
			continue
		}
		switch {
		case err != nil:
			w.t.transport++
			w.t.lastErr = err
		case code < 200 || code > 299:
			w.t.non2xx[code]++
			fallthrough
		default:
			w.t.samples = append(w.t.samples, sample{start: start.UnixNano(), lat: int64(lat)})
		}
	}
}

// do sends the next request and reads its response, reconnecting first if
// needed. On any error the connection is dropped.
func (w *worker) do() (int, error) {
	if w.conn == nil {
		c, err := net.Dial("tcp", w.phase.addr)
		if err != nil {
			return 0, err
		}
		c.SetDeadline(w.end.Add(30 * time.Second))
		w.conn, w.br = c, bufio.NewReaderSize(c, 4096)
	}
	t := &w.phase.templates[int(w.seq)%len(w.phase.templates)]
	w.buf = t.appendTo(w.buf[:0], w.phase.num, w.num, w.seq)
	w.seq++
	if _, err := w.conn.Write(w.buf); err != nil {
		w.close()
		return 0, err
	}
	code, keepAlive, err := readResponse(w.br)
	if err != nil || !keepAlive {
		w.close()
	}
	return code, err
}

func (w *worker) close() {
	if w.conn != nil {
		w.conn.Close()
		w.conn, w.br = nil, nil
	}
}

var errMalformed = errors.New("malformed HTTP response")

// readResponse reads one HTTP/1.1 response and discards its body. It is a
// minimal parser, so that the generator spends little CPU per request:
// status line, Content-Length, chunked encoding and Connection: close.
func readResponse(br *bufio.Reader) (code int, keepAlive bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, false, fmt.Errorf("%w: status line %q", errMalformed, line)
	}
	keepAlive = line[7] == '1'
	if code, err = strconv.Atoi(string(line[9:12])); err != nil {
		return 0, false, fmt.Errorf("%w: status line %q", errMalformed, line)
	}
	length, chunked := int64(-1), false
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return code, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return code, false, fmt.Errorf("%w: header line %q", errMalformed, line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.ParseInt(string(value), 10, 64); err != nil {
				return code, false, fmt.Errorf("%w: Content-Length %q", errMalformed, value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.Contains(bytes.ToLower(value), []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				keepAlive = false
			}
		}
	}
	switch {
	case code/100 == 1 || code == 204 || code == 304:
		return code, keepAlive, nil
	case chunked:
		return code, keepAlive, discardChunked(br)
	case length >= 0:
		_, err = br.Discard(int(length))
		return code, keepAlive, err
	}
	_, err = io.Copy(io.Discard, br) // the body ends with the connection
	return code, false, err
}

// discardChunked reads and drops a chunked body and its trailer.
func discardChunked(br *bufio.Reader) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		hex, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
		size, err := strconv.ParseInt(string(bytes.TrimSpace(hex)), 16, 64)
		if err != nil || size < 0 {
			return fmt.Errorf("%w: chunk size %q", errMalformed, line)
		}
		if size == 0 {
			break
		}
		if _, err := br.Discard(int(size) + 2); err != nil { // data and CRLF
			return err
		}
	}
	for { // trailer, up to the blank line
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return nil
		}
	}
}
