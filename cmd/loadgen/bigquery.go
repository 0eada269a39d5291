package main

import (
	"path/filepath"
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
// on two free loopback ports, quiet: it logs no append, and answers each
// append latency late. It returns once the fake serves tables.get.
func startFakeBigQuery(pkg, dir string, latency time.Duration) (*fakeBigQuery, error) {
	bin, err := buildCommand(pkg, filepath.Join(dir, "bqfake"))
	if err != nil {
		return nil, err
	}
	restPort, err := freePort()
	if err != nil {
		return nil, err
	}
	grpcPort, err := freePort()
	if err != nil {
		return nil, err
	}
	srv, err := startServerOn(restPort, bin, []string{"-q", "-rest-port", restPort, "-grpc-port", grpcPort,
		"-project", bqProject, "-dataset", bqDataset, "-table", bqTable,
		"-latency", latency.String()}, nil, nil, nil)
	if err != nil {
		return nil, err
	}
	c, _, err := srv.waitListening(30 * time.Second)
	if err != nil {
		srv.stop()
		return nil, err
	}
	c.Close()
	return &fakeBigQuery{srv: srv, env: map[string]string{
		"BQ_TABLE":                       bqProject + "." + bqDataset + "." + bqTable,
		"BIGQUERY_EMULATOR_HOST":         srv.addr,
		"BIGQUERY_STORAGE_EMULATOR_HOST": "127.0.0.1:" + grpcPort,
	}}, nil
}
