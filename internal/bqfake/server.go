// Package bqfake is an in-process BigQuery for tests and local runs: the
// official Go clients talk to it over real HTTP (tables.get) and gRPC (the
// Storage Write API), so the code under test runs unchanged.
//
// Served:
//   - REST GET [/bigquery/v2]/projects/P/datasets/D/tables/T (tables.get),
//     404 for unknown tables;
//   - gRPC BigQueryWrite GetWriteStream and AppendRows on "_default"
//     streams (other methods answer Unimplemented).
//
// AppendRows behaves like BigQuery's: the writer schema of the first request
// on a connection (or any later request that carries one) is resolved with
// protodesc, each row is decoded with dynamicpb and checked against the
// table's schema. A writer field with no column, or of an incompatible type,
// fails the whole request (INVALID_ARGUMENT). A row with a REQUIRED column
// missing, invalid UTF-8, invalid JSON in a JSON column or a TIMESTAMP
// outside 0001-01-01..9999-12-31 is a row error; a request with row errors
// stores no row and is answered with INVALID_ARGUMENT and row_errors, which
// carry each bad row's index. Good rows are stored as maps for assertions.
//
// Faults: FailNextAppends (the stream ends with UNAVAILABLE),
// FailNextTableGets (tables.get answers 503), SetLatency
// (responses delayed, pipelined), Hold (appends wait until released),
// RejectTable (appends answered with an error code), RemoveTable.
//
// A Server is safe for concurrent use. Close stops both servers and ends
// every wait; nothing outlives it.
package bqfake

import (
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/bigquery/storage/apiv1/storagepb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
)

// Options configures StartWith. Zero values mean the defaults.
type Options struct {
	RESTAddr string       // listen address of the REST server; default 127.0.0.1:0
	GRPCAddr string       // listen address of the gRPC server; default 127.0.0.1:0
	Logger   *slog.Logger // if set, each append is logged (rows at Debug level)
}

// Server is a fake BigQuery. The zero value is not usable: call Start.
type Server struct {
	storagepb.UnimplementedBigQueryWriteServer

	log    *slog.Logger
	restLn net.Listener
	grpcLn net.Listener
	http   *http.Server
	grpc   *grpc.Server
	closed chan struct{}
	once   sync.Once
	wg     sync.WaitGroup // serving goroutines

	appends   atomic.Int64
	rows      atomic.Int64
	rowErrors atomic.Int64

	mu        sync.Mutex
	tables    map[string]*table // by tableKey
	failNext  int
	failGets  int // tables.get requests still to answer 503
	misnumber int // appends with row errors still to answer as no server does
	firstOnly int // appends with row errors still to list only the first of
	latency   time.Duration
	hold      chan struct{} // non-nil while appends are held
}

type table struct {
	project, dataset, id string
	schema               bigquery.Schema
	rows                 []map[string]any
	reject               codes.Code // codes.OK: accept appends
}

func tableKey(project, dataset, table string) string {
	return project + "." + dataset + "." + table
}

// Start starts a fake on 127.0.0.1, on ports of the system's choosing.
func Start() (*Server, error) { return StartWith(Options{}) }

// StartWith starts a fake configured by opts.
func StartWith(opts Options) (*Server, error) {
	s := &Server{
		log:    opts.Logger,
		closed: make(chan struct{}),
		tables: make(map[string]*table),
	}
	var err error
	if s.restLn, err = net.Listen("tcp", orDefault(opts.RESTAddr)); err != nil {
		return nil, fmt.Errorf("bqfake: listen rest: %w", err)
	}
	if s.grpcLn, err = net.Listen("tcp", orDefault(opts.GRPCAddr)); err != nil {
		s.restLn.Close()
		return nil, fmt.Errorf("bqfake: listen grpc: %w", err)
	}
	s.http = &http.Server{Handler: s.restHandler(), ReadHeaderTimeout: 10 * time.Second}
	s.grpc = grpc.NewServer(grpc.MaxRecvMsgSize(maxRequestBytes+1<<20),
		// Keepalive pings as Google's front ends take them: at most one
		// every 30 s, and only while a stream is open; a client pinging
		// more often is sent away (GOAWAY too_many_pings).
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 30 * time.Second}))
	storagepb.RegisterBigQueryWriteServer(s.grpc, s)
	s.wg.Add(2)
	go func() { defer s.wg.Done(); _ = s.http.Serve(s.restLn) }()
	go func() { defer s.wg.Done(); _ = s.grpc.Serve(s.grpcLn) }()
	return s, nil
}

func orDefault(addr string) string {
	if addr == "" {
		return "127.0.0.1:0"
	}
	return addr
}

// Close stops both servers, ending every connection and wait.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.closed)
		s.grpc.Stop()
		s.http.Close()
		s.wg.Wait()
	})
}

// RESTEndpoint is the base URL of the REST server, http://127.0.0.1:port,
// for option.WithEndpoint or BIGQUERY_EMULATOR_HOST.
func (s *Server) RESTEndpoint() string { return "http://" + s.restLn.Addr().String() }

// GRPCAddr is the host:port of the gRPC server, for option.WithEndpoint or
// BIGQUERY_STORAGE_EMULATOR_HOST.
func (s *Server) GRPCAddr() string { return s.grpcLn.Addr().String() }

// AddTable creates (or replaces, empty) a table.
func (s *Server) AddTable(project, dataset, tableID string, schema bigquery.Schema) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tables[tableKey(project, dataset, tableID)] = &table{
		project: project, dataset: dataset, id: tableID, schema: schema,
	}
}

// AddTableJSON is AddTable with the schema as a BigQuery JSON schema file
// (bq mk --schema) holds it.
func (s *Server) AddTableJSON(project, dataset, tableID string, schemaJSON []byte) error {
	schema, err := bigquery.SchemaFromJSON(schemaJSON)
	if err != nil {
		return fmt.Errorf("bqfake: table %s: %w", tableID, err)
	}
	s.AddTable(project, dataset, tableID, schema)
	return nil
}

// RemoveTable deletes a table: tables.get answers 404, appends NOT_FOUND.
func (s *Server) RemoveTable(project, dataset, tableID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tables, tableKey(project, dataset, tableID))
}

// RejectTable makes appends to a table fail with code (in the response, as
// BigQuery reports PERMISSION_DENIED for instance); codes.OK accepts them
// again.
func (s *Server) RejectTable(project, dataset, tableID string, code codes.Code) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tables[tableKey(project, dataset, tableID)]; t != nil {
		t.reject = code
	}
}

// Rows returns the rows stored in a table, in order. Each row maps column
// names to values: STRING and JSON string, BYTES []byte, INTEGER int64,
// FLOAT float64, BOOLEAN bool, TIMESTAMP time.Time (UTC), RECORD
// map[string]any, REPEATED []any. NULL columns are absent.
func (s *Server) Rows(project, dataset, tableID string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tables[tableKey(project, dataset, tableID)]
	if t == nil {
		return nil
	}
	out := make([]map[string]any, len(t.rows))
	for i, r := range t.rows {
		out[i] = maps.Clone(r)
	}
	return out
}

// Appends counts the AppendRows requests received, failed ones included.
func (s *Server) Appends() int64 { return s.appends.Load() }

// AppendedRows counts the rows stored, in every table.
func (s *Server) AppendedRows() int64 { return s.rows.Load() }

// RowErrors counts the rows answered with a row error.
func (s *Server) RowErrors() int64 { return s.rowErrors.Load() }

// FailNextAppends makes the next n append requests end their stream with
// UNAVAILABLE, as when BigQuery is down; 0 cancels what is left.
func (s *Server) FailNextAppends(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = n
}

// MisnumberNextRowErrors makes the next n appends that have row errors
// answer them as no documented server does: every index past the
// request's rows, and no error status. Nothing of those appends is
// stored. It is for testing that a writer does not take such an answer for
// success.
func (s *Server) MisnumberNextRowErrors(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.misnumber = n
}

// ListFirstRowErrorOnly makes the next n appends that have row errors list
// only the first, as BigQuery may ("the list may not be complete"): a
// writer that stores the other rows again finds the next bad one in its
// next round. Nothing of those appends is stored, as always.
func (s *Server) ListFirstRowErrorOnly(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.firstOnly = n
}

// FailNextTableGets makes the next n tables.get requests answer 503
// backendError, as when BigQuery is briefly unavailable; 0 cancels what is
// left.
func (s *Server) FailNextTableGets(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failGets = n
}

// SetLatency delays each append's response by d. Requests on a connection
// are still processed in order and responses are pipelined, as over a
// network with that round-trip time.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// Hold makes append requests wait, once received (and counted by Appends)
// and before being processed, until release is called; release is
// idempotent. A connection's requests are read in order, so the requests
// behind a held one on the same connection are not received (nor counted)
// until it is released.
func (s *Server) Hold() (release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hold == nil {
		s.hold = make(chan struct{})
	}
	h := s.hold
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.hold == h {
				s.hold = nil
			}
			close(h)
		})
	}
}
