package main

import (
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

// bench is one loadgen run: its options, files and servers.
type bench struct {
	o        options
	dir      string   // temporary: metadata files, the built function
	metadata string   // the function's metadata file
	devices  []string // its device ids, which the requests use
	bin      string   // the function's local runner

	bare, framework, fn *server       // nil when not started
	bq                  *fakeBigQuery // -bq: where the function writes its rows; nil otherwise
	fnAddr              string
	phases              int     // phases made so far: distinct message ids
	steady              *result // the last function phase of the rounds
}

func run(o options) error {
	if o.shape != shapePush && o.shape != shapeCloudEvent {
		return fmt.Errorf("-shape %q: want %s or %s", o.shape, shapePush, shapeCloudEvent)
	}
	if o.clients < 1 || o.rounds < 1 || o.devices < 1 || o.duration <= 0 {
		return fmt.Errorf("-c, -rounds, -devices and -d must be positive")
	}
	dir, err := os.MkdirTemp("", "loadgen-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b := &bench{o: o, dir: dir, metadata: filepath.Join(dir, "devices.csv"), bin: o.fnBin, fnAddr: o.url}
	defer b.stop()
	fmt.Printf("loadgen: %d CPUs, %s; shape=%s clients=%d duration=%v warmup=%v rate=%s devices=%d\n",
		runtime.NumCPU(), runtime.Version(), o.shape, o.clients, o.duration, o.warmup, rateString(o.rate), o.devices)
	if err := b.start(); err != nil {
		return err
	}
	if err := b.rounds(); err != nil {
		return err
	}
	if o.refreshEvery > 0 && b.fn != nil {
		if err := b.refresh(); err != nil {
			return err
		}
	}
	if o.cold > 0 {
		return b.coldStarts()
	}
	return nil
}

// start writes the metadata, builds the function if needed, starts the
// servers and waits until each one listens.
func (b *bench) start() error {
	data, devices := metadataCSV(b.o.devices, 0)
	if err := writeAtomic(b.metadata, data); err != nil {
		return err
	}
	b.devices = devices
	if b.bin == "" && (b.o.url == "" || b.o.cold > 0) {
		var err error
		if b.bin, err = buildFunction(b.o.pkg, b.dir); err != nil {
			return err
		}
	}
	if err := b.startBaselines(); err != nil {
		return err
	}
	if b.o.bq && b.o.url == "" {
		var err error
		if b.bq, err = startFakeBigQuery(b.o.bqPkg, b.dir, b.o.bqLatency); err != nil {
			return err
		}
	}
	if b.o.url == "" {
		if err := b.startFunction(); err != nil {
			return err
		}
	}
	for _, s := range []*server{b.bare, b.framework, b.fn} {
		if s != nil {
			c, _, err := s.waitListening(30 * time.Second)
			if err != nil {
				return err
			}
			c.Close()
		}
	}
	if b.fn != nil {
		rows := "stdout, to /dev/null"
		if b.bq != nil {
			rows = "BigQuery, the fake at " + b.bq.srv.addr
			if b.o.bqLatency > 0 {
				rows += fmt.Sprintf(", answering appends %v late", b.o.bqLatency)
			}
		}
		fmt.Printf("function: %s (metadata %.1f MB, %d devices; rows to %s)\n\n", b.fnAddr, float64(len(data))/1e6, len(devices), rows)
	} else {
		fmt.Printf("function: %s (already running; events of devices vr-0000001 to vr-%07d)\n\n", b.fnAddr, len(devices))
	}
	return nil
}

// startBaselines starts loadgen itself in bare mode, once per baseline.
func (b *bench) startBaselines() error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if b.o.bare {
		if b.bare, err = startServer(self, nil, map[string]string{bareEnv: bareNetHTTP, bareWorkEnv: "0s"}, nil, nil); err != nil {
			return err
		}
	}
	if b.o.framework {
		if b.framework, err = startServer(self, nil, map[string]string{bareEnv: bareFramework, bareWorkEnv: b.o.frameworkWork.String()}, nil, nil); err != nil {
			return err
		}
	}
	return nil
}

// startFunction starts the function, its rows to /dev/null.
func (b *bench) startFunction() error {
	ttl := "1h"
	if b.o.refreshEvery > 0 {
		ttl = b.o.ttl.String()
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer devnull.Close() // the child has its own descriptor
	var stderrCopy io.Writer
	if b.o.fnStderr != "" {
		f, err := os.Create(b.o.fnStderr)
		if err != nil {
			return err
		}
		stderrCopy = f // closed when loadgen exits
	}
	env := functionEnv(b.metadata, ttl)
	if b.bq != nil {
		maps.Copy(env, b.bq.env)
	}
	if b.fn, err = startServer(b.bin, nil, env, devnull, stderrCopy); err != nil {
		return err
	}
	b.fnAddr = b.fn.addr
	return nil
}

// stop stops the servers that were started.
func (b *bench) stop() {
	for _, s := range []*server{b.bare, b.framework, b.fn} {
		if s != nil {
			s.stop()
		}
	}
	if b.bq != nil {
		b.bq.srv.stop()
	}
}

// functionEnv is the function's configuration for a load run: local
// metadata, rows to stdout, INFO logs (for the "metadata loaded" lines).
func functionEnv(metadata, ttl string) map[string]string {
	return map[string]string{
		"FUNCTION_TARGET": "EnrichEvent",
		"LOCAL_ONLY":      "true",
		"METADATA_URI":    metadata,
		"METADATA_TTL":    ttl,
		"LOG_LEVEL":       "info",
	}
}

func rateString(rate float64) string {
	if rate <= 0 {
		return "closed-loop"
	}
	return fmt.Sprintf("%.0f/s", rate)
}
