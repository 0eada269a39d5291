package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// newPhase returns a phase against addr, with its own message ids.
func (b *bench) newPhase(name, addr string) (*phase, error) {
	b.phases++
	n := 1024
	if b.o.pad > 0 { // large requests: at most about 64 MB of them
		n = max(1, min(n, 64<<20/b.o.pad))
	}
	t, err := buildTemplates(b.o.shape, addr, b.devices, n, b.o.pad)
	return &phase{name: name, num: b.phases, addr: addr, templates: t, clients: b.o.clients,
		rate: b.o.rate, warmup: b.o.warmup, duration: b.o.duration}, err
}

// rounds drives the bare server, the bare framework and the function in
// turn, -rounds times, and reports the throughput ratios. Each round
// starts one server later than the one before (bare, framework, function;
// then framework, function, bare; ...), so that over rounds no server
// always runs last, after the machine has been loaded longest.
func (b *bench) rounds() error {
	printHeader(os.Stdout)
	var bares, frameworks, fns []*result
	type target struct {
		name    string
		srv     *server
		addr    string
		results *[]*result
	}
	targets := []target{
		{"bare net/http", b.bare, addrOf(b.bare), &bares},
		{frameworkName(b.o.frameworkWork), b.framework, addrOf(b.framework), &frameworks},
		{"function", b.fn, b.fnAddr, &fns},
	}
	for round := 1; round <= b.o.rounds; round++ {
		for _, s := range rotate(targets, round-1) {
			if s.addr == "" {
				continue
			}
			p, err := b.newPhase(fmt.Sprintf("%s #%d", s.name, round), s.addr)
			if err != nil {
				return err
			}
			*s.results = append(*s.results, runPhase(p, s.srv))
		}
	}
	if b.bare != nil || b.framework != nil {
		fmt.Println()
	}
	if b.bare != nil {
		printRatio(os.Stdout, "function/bare net/http", fns, bares, 70)
	}
	if b.framework != nil {
		printRatio(os.Stdout, "function/"+frameworkName(b.o.frameworkWork), fns, frameworks, 0)
	}
	if b.bare != nil && b.framework != nil {
		printRatio(os.Stdout, frameworkName(b.o.frameworkWork)+"/bare net/http", frameworks, bares, 0)
	}
	b.steady = fns[len(fns)-1]
	printPeakRSS(b.fn)
	return nil
}

// printPeakRSS prints what an instance's memory limit must hold: the
// function's peak resident memory so far (if loadgen started it).
func printPeakRSS(fn *server) {
	if fn == nil {
		return
	}
	if rss := fn.peakRSS(); rss > 0 {
		fmt.Printf("  function's peak resident memory (VmHWM): %d MiB\n", rss>>20)
	}
}

// frameworkName names the bare framework's phases, with the work its
// handler does.
func frameworkName(work time.Duration) string {
	if work > 0 {
		return fmt.Sprintf("bare framework+%v", work)
	}
	return "bare framework"
}

// rotate returns a copy of s that starts at s[n % len(s)] and wraps around.
func rotate[T any](s []T, n int) []T {
	n %= len(s)
	return append(slices.Clip(s[n:]), s[:n]...)
}

func addrOf(s *server) string {
	if s == nil {
		return ""
	}
	return s.addr
}

// refresh drives the function while the metadata file is rewritten every
// -refresh-every, and compares its p99 with the last steady phase's.
func (b *bench) refresh() error {
	p, err := b.newPhase("function + refreshes", b.fnAddr)
	if err != nil {
		return err
	}
	before := len(b.fn.loadLines())
	rw := startRewriter(b.metadata, len(b.devices), b.o.refreshEvery)
	r := runPhase(p, b.fn)
	rw.stop()
	printRefresh(os.Stdout, b.steady, r, b.fn.loadLines()[before:], rw.count.Load())
	printPeakRSS(b.fn) // two tables during a swap, and the heap's growth between collections
	if n := rw.errs.Load(); n > 0 {
		fmt.Printf("  %d rewrites of the metadata file failed\n", n)
	}
	return nil
}

// coldStarts measures -cold fresh starts of the function.
func (b *bench) coldStarts() error {
	runs, err := coldStarts(b.bin, b.dir, b.o.shape, b.o.coldBytes, b.o.cold)
	printColdStarts(os.Stdout, runs)
	return err
}

// runPhase runs p against s (nil when loadgen did not start the server),
// prints the result and returns it.
func runPhase(p *phase, s *server) *result {
	serverCPU := func() time.Duration {
		if s == nil {
			return 0
		}
		return s.cpu()
	}
	type times struct {
		server, self time.Duration
		machine      cpuTicks
		machineOK    bool
	}
	now := func() times {
		m, ok := machineCPU()
		return times{serverCPU(), selfCPU(), m, ok}
	}
	atRecord := make(chan times, 1)
	time.AfterFunc(p.warmup, func() { atRecord <- now() })
	tallies := p.run()
	end := now()
	r := summarise(p.name, p.duration, tallies)
	start := <-atRecord
	r.serverCPU, r.selfCPU = end.server-start.server, end.self-start.self
	if start.machineOK && end.machineOK {
		r.machine = end.machine.sub(start.machine)
	}
	if s == nil {
		r.serverCPU = -1 // unknown
	}
	r.print(os.Stdout)
	return r
}

// printRatio reports the throughput of the phases as a share of the
// baseline phases', per round and over all rounds, against a target
// share in percent (0: none).
func printRatio(w io.Writer, name string, phases, baselines []*result, target float64) {
	var n, nb int
	var d, db time.Duration
	var rounds []string
	for i := range phases {
		rounds = append(rounds, fmt.Sprintf("%.1f%%", 100*phases[i].throughput()/baselines[i].throughput()))
		n, d = n+len(phases[i].samples), d+phases[i].duration
		nb, db = nb+len(baselines[i].samples), db+baselines[i].duration
	}
	share := 100 * (float64(n) / d.Seconds()) / (float64(nb) / db.Seconds())
	fmt.Fprintf(w, "%s throughput: %.1f%% (rounds: %s)", name, share, strings.Join(rounds, ", "))
	switch {
	case target == 0:
	case share >= target:
		fmt.Fprintf(w, "; target >= %.0f%%: met", target)
	default:
		fmt.Fprintf(w, "; target >= %.0f%%: MISSED", target)
	}
	fmt.Fprintln(w)
}
