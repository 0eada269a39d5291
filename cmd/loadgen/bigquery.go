package main

import (
	"bufio"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"
)

// The tables of cmd/bqfake's defaults, which the function writes with -bq.
const (
	bqProject = "local-project"
	bqDataset = "devicestream"
	bqTable   = "events"
)

// fakeBigQuery is cmd/bqfake running as a child process, and the
// function's environment that sends its rows there.
type fakeBigQuery struct {
	srv *server // its REST port is srv.addr's
	env map[string]string
}

// startFakeBigQuery builds cmd/bqfake (package pkg) into dir and starts it
// quiet (it logs no append, and answers each append latency late) on two
// loopback ports that it picks itself and prints, so that no other process
// can take them between their choice and their use. It returns once the
// fake serves tables.get.
func startFakeBigQuery(pkg, dir string, latency time.Duration) (*fakeBigQuery, error) {
	bin, err := buildCommand(pkg, filepath.Join(dir, "bqfake"))
	if err != nil {
		return nil, err
	}
	out, printed := io.Pipe()
	srv, err := startServerOn("0", bin, []string{"-q", "-rest-port", "0", "-grpc-port", "0",
		"-project", bqProject, "-dataset", bqDataset, "-table", bqTable,
		"-latency", latency.String()}, nil, printed, nil)
	if err != nil {
		return nil, err
	}
	env := make(chan map[string]string, 1)
	go func() { env <- readExports(out) }()
	select {
	case e := <-env:
		if e["BIGQUERY_EMULATOR_HOST"] == "" || e["BIGQUERY_STORAGE_EMULATOR_HOST"] == "" || e["BQ_TABLE"] == "" {
			srv.stop()
			return nil, fmt.Errorf("bqfake printed no addresses:\n%s", srv.stderrTail())
		}
		srv.addr = e["BIGQUERY_EMULATOR_HOST"]
		return &fakeBigQuery{srv: srv, env: e}, nil
	case <-srv.exited:
		return nil, fmt.Errorf("bqfake exited before serving:\n%s", srv.stderrTail())
	case <-time.After(30 * time.Second):
		srv.stop()
		return nil, fmt.Errorf("bqfake printed no addresses in 30 s:\n%s", srv.stderrTail())
	}
}

// readExports reads bqfake's standard output up to the blank line after
// its "export NAME=VALUE" lines, which it prints once it serves, and
// returns them; it then drains the rest, so that bqfake never blocks on
// writing.
func readExports(out io.Reader) map[string]string {
	sc := bufio.NewScanner(out)
	env := map[string]string{}
	for sc.Scan() {
		line := sc.Text()
		if export, ok := strings.CutPrefix(line, "export "); ok {
			if name, value, ok := strings.Cut(export, "="); ok {
				env[name] = value
			}
		} else if line == "" && len(env) > 0 {
			break
		}
	}
	go io.Copy(io.Discard, out)
	return env
}
