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

	"github.com/GoogleCloudPlatform/functions-framework-go/functions"
)

func init() {
	functions.HTTP("EnrichEvent", enrichEvent)
}

// instance is the process's one function, built on first use from the
// environment, and shared by every invocation.
var instance = sync.OnceValues(func() (*function, error) {
	cfg, err := loadConfig(os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("bad configuration: %w", err)
	}
	return newFunction(context.Background(), cfg, os.Stdout, os.Stderr)
})

// Setup builds the function from the environment now rather than on the
// first request, so that the local runner can report a bad configuration
// and exit.
func Setup() error {
	_, err := instance()
	return err
}

// enrichEvent is the registered entry point.
func enrichEvent(w http.ResponseWriter, r *http.Request) {
	f, err := instance()
	if err != nil {
		newLogger(os.Stderr, slog.LevelInfo).Error("EnrichEvent cannot start", "error", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	f.ServeHTTP(w, r)
}
