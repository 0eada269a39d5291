// Command cmd runs the EnrichEvent function locally with the functions
// framework. With no environment at all it uses the sample metadata
// compiled into the binary and prints rows on stdout:
//
//	go run ./cmd
//
// PORT (default 8080) sets the port, LOCAL_ONLY=true (or 1) binds 127.0.0.1 only,
// FUNCTION_TARGET defaults to EnrichEvent; every other variable is the
// function's own (see README.md).
package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	"github.com/devicestream/enrichevent"
)

func main() {
	log.SetFlags(0)
	port := getenv("PORT", "8080")
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		log.Fatalf("EnrichEvent: PORT %q is not a port number", port)
	}
	host := ""
	if localOnly, err := strconv.ParseBool(getenv("LOCAL_ONLY", "false")); err != nil {
		log.Fatalf("EnrichEvent: LOCAL_ONLY %q is not true or false", os.Getenv("LOCAL_ONLY"))
	} else if localOnly {
		host = "127.0.0.1"
	}
	// The framework serves FUNCTION_TARGET at every path, which is what a
	// Pub/Sub push subscription to /projects/P/topics/T needs.
	setDefault("FUNCTION_TARGET", "EnrichEvent")
	setDefault("METADATA_URI", enrichevent.SampleMetadataURI)
	if err := enrichevent.Setup(); err != nil {
		log.Fatalf("EnrichEvent: %v", err)
	}
	// The framework listens only once it starts serving: try the address
	// first, so that a port in use is reported before the banner.
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		log.Fatalf("EnrichEvent: %v", err)
	}
	ln.Close()
	fmt.Fprintf(os.Stderr, "EnrichEvent listening on %s:%s (metadata %s)\nPost a sample event:\n\n%s\n\n",
		orDefault(host, "0.0.0.0"), port, os.Getenv("METADATA_URI"), sampleCurl(port))
	if err := funcframework.StartHostPort(host, port); err != nil {
		log.Fatalf("funcframework.StartHostPort: %v", err)
	}
}

// sampleCurl returns a curl command that posts a Pub/Sub push envelope
// carrying an event of sample device vr-0001.
func sampleCurl(port string) string {
	data, _ := json.Marshal(map[string]any{
		"device_id":  "vr-0001",
		"event_time": time.Now().UTC().Format(time.RFC3339),
		"event":      "session_start",
	})
	env, _ := json.Marshal(map[string]any{
		"message": map[string]any{
			"data":        base64.StdEncoding.EncodeToString(data),
			"messageId":   "local-1",
			"publishTime": time.Now().UTC().Format(time.RFC3339Nano),
			"attributes":  map[string]string{"source": "curl"},
		},
		"subscription": "projects/local/subscriptions/device-events-push",
	})
	return fmt.Sprintf("curl -i -H 'Content-Type: application/json' -d '%s' http://127.0.0.1:%s/projects/local/topics/device-events", env, port)
}

func getenv(name, def string) string {
	return orDefault(os.Getenv(name), def)
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func setDefault(name, value string) {
	if os.Getenv(name) == "" {
		os.Setenv(name, value)
	}
}
