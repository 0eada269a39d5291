// Command bqfake runs the repository's fake BigQuery (internal/bqfake) on
// its own, with the rows and error-records tables created from
// sink/schema/*.json, so that the function can stream real Storage Write API
// appends on a laptop, without a cloud project, and you can watch them
// arrive:
//
//	go run ./cmd/bqfake                # then, in another shell:
//	export BQ_TABLE=local-project.devicestream.events
//	export BIGQUERY_EMULATOR_HOST=127.0.0.1:9050
//	export BIGQUERY_STORAGE_EMULATOR_HOST=127.0.0.1:9060
//	go run ./cmd ...
//
// Each append is logged on stderr (-q: none); -v logs every row too;
// -latency D answers each append D late, as BigQuery across a network. Rows
// live in memory until the command stops (Ctrl-C), when it prints how many
// each table received.
package main

import (
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/devicestream/enrichevent/internal/bqfake"
	"github.com/devicestream/enrichevent/sink"
)

func main() {
	project := flag.String("project", "local-project", "project id of the tables")
	dataset := flag.String("dataset", "devicestream", "dataset id of the tables")
	table := flag.String("table", "events", "rows table id")
	errorTable := flag.String("error-table", "", "error-records table id (default <table>_error_records)")
	restPort := flag.Int("rest-port", 9050, "port of the REST API (tables.get); 0 picks one")
	grpcPort := flag.Int("grpc-port", 9060, "port of the Storage Write API (gRPC); 0 picks one")
	verbose := flag.Bool("v", false, "log every row received")
	quiet := flag.Bool("q", false, "log no append, only warnings and errors (for load runs)")
	latency := flag.Duration("latency", 0, "delay each append's answer by this, like a network round trip to BigQuery")
	flag.Parse()
	if *errorTable == "" {
		*errorTable = *table + "_error_records"
	}

	level := slog.LevelInfo
	switch {
	case *verbose:
		level = slog.LevelDebug
	case *quiet:
		level = slog.LevelWarn
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	rows, err := sink.RowsSchema()
	if err != nil {
		log.Fatal(err)
	}
	errs, err := sink.ErrorRecordsSchema()
	if err != nil {
		log.Fatal(err)
	}
	srv, err := bqfake.StartWith(bqfake.Options{
		RESTAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(*restPort)),
		GRPCAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(*grpcPort)),
		Logger:   logger,
	})
	if err != nil {
		log.Fatal(err)
	}
	srv.SetLatency(*latency)
	if err := srv.AddTableJSON(*project, *dataset, *table, rows.JSON); err != nil {
		log.Fatal(err)
	}
	if err := srv.AddTableJSON(*project, *dataset, *errorTable, errs.JSON); err != nil {
		log.Fatal(err)
	}

	fmt.Printf("fake BigQuery serving %s.%s.{%s,%s}; in the function's shell:\n\n", *project, *dataset, *table, *errorTable)
	fmt.Printf("export BQ_TABLE=%s.%s.%s\n", *project, *dataset, *table)
	if *errorTable != *table+"_error_records" {
		fmt.Printf("export BQ_ERROR_TABLE=%s\n", *errorTable)
	}
	fmt.Printf("export BIGQUERY_EMULATOR_HOST=%s\n", srv.RESTEndpoint()[len("http://"):])
	fmt.Printf("export BIGQUERY_STORAGE_EMULATOR_HOST=%s\n\n", srv.GRPCAddr())

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	srv.Close()
	fmt.Printf("\n%s: %d rows; %s: %d rows; %d appends\n",
		*table, len(srv.Rows(*project, *dataset, *table)),
		*errorTable, len(srv.Rows(*project, *dataset, *errorTable)), srv.Appends())
}
