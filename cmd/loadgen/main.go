// Command loadgen measures the EnrichEvent function under load on one
// machine: throughput and latency against a bare net/http handler, latency
// while the metadata refreshes, and the cold start.
//
//	go run ./cmd/loadgen -c 16 -d 10s -shape push -refresh-every 2s -cold 5
//
// Run it from the module root. It builds the local runner (./cmd), starts
// it as a child process on a loopback port with a generated metadata file
// (-devices devices, CSV) and the stdout sink writing to /dev/null, and
// starts a second child, itself in bare mode: a net/http handler that only
// reads the body and answers 204. Then, for each of -rounds rounds, it
// drives the bare server and then the function (each round starting one
// server later than the one before, so that none always runs last, after
// the machine has been busy longest) with -c keep-alive
// connections, each sending one request at a time (or, with -rate, on a
// fixed schedule) for -warmup unrecorded and -d recorded. Every request is
// a pre-built Pub/Sub push envelope (-shape push) or binary CloudEvent
// (-shape cloudevent) with a ~300-byte event of one of the devices and a
// distinct message id spliced in; responses are read by a minimal HTTP/1.1
// parser, so that the generator's own CPU per request stays small.
//
// With -refresh-every D the function runs with METADATA_TTL=-ttl, and a
// further phase rewrites the metadata file every D: each rewrite is a new
// version that the function downloads, parses and swaps in the background.
// loadgen reads the function's "metadata loaded" log lines and reports the
// p99 of the requests that overlapped a load against the steady p99.
//
// With -cold N it starts the function N more times, fresh, with -cold-bytes
// of metadata, and reports the time to the first enriched row and its
// breakdown.
//
// With -framework-work D the bare framework's handler keeps its CPU busy
// for D (reading the clock in a loop) after it reads the body: a baseline
// whose handler has a known cost, to compare the function with.
//
// With -bq the function writes its rows to BigQuery instead: to the
// repository's fake (./cmd/bqfake), built and started on loopback, which
// shares the machine's CPUs with the others. The throughput target is the
// stdout sink's; -bq measures what the BigQuery path adds. -bq-latency D
// makes the fake answer each append D late, as across a network: rows then
// collect into fewer, larger appends, as they do against BigQuery.
//
// -url host:port drives a function that is already running instead (no
// refresh phase; its CPU time is not reported); -write-metadata FILE
// writes the metadata file of -devices devices, whose ids the requests
// use, and exits.
//
// The servers and loadgen share the machine's CPUs: on a small machine the
// generator's CPU per request (reported) is CPU the server does not get.
// Each phase also reports the share of the machine's CPU time that was
// idle (no process had work ready) and stolen by the hypervisor.
package main

import (
	"flag"
	"log"
	"os"
	"time"
)

type options struct {
	url, shape, pkg, fnBin, writeMeta string
	fnStderr                          string
	clients, rounds, devices          int
	duration, warmup                  time.Duration
	rate                              float64
	refreshEvery, ttl, frameworkWork  time.Duration
	cold, coldBytes                   int
	bare, framework, bq               bool
	bqPkg                             string
	bqLatency                         time.Duration
	pad                               int
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("loadgen: ")
	if kind := os.Getenv(bareEnv); kind != "" {
		work, err := time.ParseDuration(os.Getenv(bareWorkEnv))
		if err != nil {
			log.Fatalf("%s: %v", bareWorkEnv, err)
		}
		log.Fatal(serveBare(kind, os.Getenv("PORT"), work))
	}
	var o options
	flag.StringVar(&o.url, "url", "", "host:port of a running function to drive, instead of starting one")
	flag.StringVar(&o.shape, "shape", shapePush, "request shape: push (Pub/Sub push envelope) or cloudevent (binary CloudEvent)")
	flag.IntVar(&o.clients, "c", 16, "concurrent keep-alive clients")
	flag.DurationVar(&o.duration, "d", 10*time.Second, "recorded duration of each phase")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "unrecorded warm-up before each phase")
	flag.Float64Var(&o.rate, "rate", 0, "requests per second in all, on a fixed schedule; 0: as fast as each client can")
	flag.IntVar(&o.rounds, "rounds", 1, "rounds of bare then function phases, to compare under the same machine load")
	flag.IntVar(&o.devices, "devices", 100_000, "devices in the generated metadata file")
	flag.DurationVar(&o.refreshEvery, "refresh-every", 0, "rewrite the metadata file this often in a refresh phase; 0: no refresh phase")
	flag.DurationVar(&o.ttl, "ttl", time.Second, "METADATA_TTL of the function when -refresh-every is set")
	flag.IntVar(&o.cold, "cold", 0, "cold starts to measure")
	flag.IntVar(&o.coldBytes, "cold-bytes", 1<<20, "metadata size for the cold starts")
	flag.BoolVar(&o.bare, "bare", true, "measure the bare net/http baseline")
	flag.BoolVar(&o.framework, "framework", true, "measure the bare handler behind the functions framework too")
	flag.DurationVar(&o.frameworkWork, "framework-work", 0, "CPU time the bare framework's handler spends after reading the body, to find how much handler time the throughput target leaves")
	flag.StringVar(&o.pkg, "pkg", "./cmd", "package of the function's local runner, built with go build")
	flag.StringVar(&o.fnBin, "fn-bin", "", "pre-built local runner to use instead of building -pkg")
	flag.StringVar(&o.fnStderr, "fn-stderr", "", "copy the function's stderr (its logs; GODEBUG=gctrace=1 output) to this file")
	flag.BoolVar(&o.bq, "bq", false, "the function writes its rows to BigQuery: to the fake (-bq-pkg), started on loopback, instead of stdout")
	flag.StringVar(&o.bqPkg, "bq-pkg", "./cmd/bqfake", "package of the fake BigQuery for -bq, built with go build")
	flag.IntVar(&o.pad, "pad", 0, "bytes of padding added to each event: large messages (over the function's MAX_PAYLOAD_BYTES, 1 MiB, each becomes an error record)")
	flag.DurationVar(&o.bqLatency, "bq-latency", 0, "with -bq, the fake answers each append this late, as BigQuery across a network")
	flag.StringVar(&o.writeMeta, "write-metadata", "", "write the metadata file of -devices devices to this path and exit")
	flag.Parse()
	if o.pad < 0 {
		log.Fatalf("-pad %d: want bytes of padding, 0 or more", o.pad)
	}
	if o.writeMeta != "" {
		data, _ := metadataCSV(o.devices, 0)
		if err := writeAtomic(o.writeMeta, data); err != nil {
			log.Fatal(err)
		}
		return
	}
	if err := run(o); err != nil {
		log.Fatal(err)
	}
}
