// Package enrichevent is a Cloud Run function (gen2 Cloud Function) that
// enriches Pub/Sub events with device metadata and writes them to BigQuery.
//
// EnrichEvent receives each event as an Eventarc CloudEvent or as a raw
// Pub/Sub push envelope, joins the event's device id with metadata from a
// file in Cloud Storage held in a shared in-memory cache (package cache),
// builds the row (package enrich) and writes it (package sink). A message
// that can never become a row is written to the error-records table and
// acknowledged; a transient failure answers 5xx so Pub/Sub redelivers.
//
// The function is registered with functions.HTTP rather than
// functions.CloudEvent: the framework's CloudEvent path hands concurrent
// requests across one shared unbuffered channel and can leave a request
// unanswered (cloudevents/sdk-go issues #1224 and #1332). CloudEvents are
// parsed in the request's own goroutine instead.
package enrichevent

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/functions"
)

// startLog logs what keeps the function from starting: one logger, so that
// the line each request logs meanwhile is thinned like any other.
var startLog = newLogger(os.Stderr, slog.LevelInfo)

func init() {
	functions.HTTP("EnrichEvent", enrichEvent)
	if err := checkDeployedConfig(os.Getenv); err != nil {
		startLog.Error("EnrichEvent cannot start", "error", err)
		os.Exit(1)
	}
}

// checkDeployedConfig fails a bad configuration on Cloud Run (K_SERVICE
// set) before the instance listens, so that its revision never becomes
// ready: the deploy fails, and traffic stays on the revision before it.
// Answering 500 instead would pass the deploy and then fail every event
// until Pub/Sub dead-letters it. Elsewhere (tests, the local runner, which
// reports it itself) the configuration is read on first use.
func checkDeployedConfig(getenv func(string) string) error {
	if getenv("K_SERVICE") == "" {
		return nil
	}
	if _, err := loadConfig(getenv); err != nil {
		return fmt.Errorf("bad configuration: %w", err)
	}
	return nil
}

// instance returns the process's one function, built from the environment
// on first use and shared by every invocation. A bad configuration is
// final (on Cloud Run, checkDeployedConfig has stopped the instance
// already): it answers 500 until it is deployed again. Any other
// failure to build it (a client that cannot be made) is tried again by a
// request at least a second later, so that an instance does not stay
// broken by something passing.
func instance() (*function, error) {
	if f := built.fn.Load(); f != nil {
		return f, nil
	}
	built.mu.Lock()
	defer built.mu.Unlock()
	if f := built.fn.Load(); f != nil {
		return f, nil
	}
	if built.err != nil && (built.final || time.Since(built.at) < time.Second) {
		return nil, built.err
	}
	cfg, err := loadConfig(os.Getenv)
	if err != nil {
		built.err, built.final = fmt.Errorf("bad configuration: %w", err), true
		return nil, built.err
	}
	f, err := newFunction(context.Background(), cfg, os.Stdout, os.Stderr)
	if err != nil {
		built.err, built.at = err, time.Now()
		return nil, err
	}
	if cfg.onCloudRun {
		f.drains = true
		drainOnSIGTERM(f.log)
	}
	built.fn.Store(f)
	return f, nil
}

// built is what instance has built, or why it could not.
var built struct {
	fn    atomic.Pointer[function]
	mu    sync.Mutex
	err   error     // the last failure, if fn is nil
	at    time.Time // when it happened
	final bool      // err is a bad configuration
}

// Setup builds the function from the environment now rather than on the
// first request, and checks that a local metadata file is there, so that
// the local runner can report a bad configuration and exit.
func Setup() error {
	if _, err := instance(); err != nil {
		return err
	}
	cfg, err := loadConfig(os.Getenv)
	if err != nil {
		return err
	}
	return checkLocalMetadata(cfg.metadataURI)
}

// enrichEvent is the registered entry point.
func enrichEvent(w http.ResponseWriter, r *http.Request) {
	f, err := instance()
	if err != nil {
		startLog.Error("EnrichEvent cannot start", "error", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if !f.drains {
		f.ServeHTTP(w, r)
		return
	}
	inFlight.Add(1)
	defer inFlight.Add(-1)
	f.ServeHTTP(w, r)
	// Send the answer before the request stops counting: the drain exits
	// once none is counted, and an answer still in net/http's buffer would
	// be lost with the process (Pub/Sub would redeliver a stored event: a
	// duplicate row). Not deferred: after a panic the framework must still
	// answer 500, which a flush would have made a 200.
	_ = http.NewResponseController(w).Flush()
}
