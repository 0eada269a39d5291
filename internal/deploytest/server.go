// Package deploytest tests deploy.sh offline: it runs the script with the
// real gcloud and bq CLIs against Server, an in-process fake of the Google
// Cloud REST APIs the script calls, which keeps state and records every
// request.
//
// The CLIs reach Server as their HTTP proxy: every API endpoint is overridden
// to http://<api>.fake/, so the fake routes on the host name (Cloud Run's
// regional "us-central1-run.fake" included) and sees any attempt to reach a
// real Google host, which it refuses and records.
//
// Server is safe for concurrent use.
package deploytest

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Request is one request the fake received.
type Request struct {
	Method string
	API    string // "pubsub", "bigquery", ...; "" for a refused host
	Host   string
	Path   string // URL path, unescaped
	Query  string
	Body   []byte
	Type   string    // Content-Type
	At     time.Time // when it arrived
	Status int       // the fake's answer
}

// String shows the method, URL and answer, as in "GET pubsub.fake/v1/... -> 404".
func (r Request) String() string {
	s := r.Method + " " + r.Host + r.Path
	if r.Query != "" {
		s += "?" + r.Query
	}
	return fmt.Sprintf("%s -> %d", s, r.Status)
}

// JSON decodes the request body into a generic map (nil if it is not JSON).
func (r Request) JSON() map[string]any {
	var m map[string]any
	if json.Unmarshal(r.Body, &m) != nil {
		return nil
	}
	return m
}

// Server is the fake. Start it with NewServer; the zero value is not usable.
type Server struct {
	Project       string
	ProjectNumber string

	// AccountLag makes IAM eventually consistent, as it is: each service
	// account created is unknown to the first AccountLag setIamPolicy calls
	// whose policy names it, which fail with 400 "Service account ... does
	// not exist." Set it before the script runs.
	AccountLag int
	// EventarcLag fails the first EventarcLag deployments of a function with
	// a Pub/Sub trigger, as on a new project: Eventarc creates its service
	// agent with the first trigger, and until the agent's permissions have
	// propagated the operation ends with "Permission denied while using the
	// Eventarc Service Agent", leaving the function FAILED, without a
	// trigger.
	EventarcLag int
	// BuildLag fails the first BuildLag deployments of a function in their
	// build, as right after the build account got its roles, before IAM
	// has propagated them: the operation ends with "Could not build the
	// function due to a missing permission on the build service account",
	// leaving the function FAILED. It is checked before EventarcLag.
	BuildLag int
	// TriggerRecreations counts the function updates that gave the event
	// trigger again, which Cloud Functions answers by deleting the trigger
	// and its subscription (and the events waiting there) and creating new
	// ones. Read it after the script has run.
	TriggerRecreations int

	// bigQueryDiscovery is served as BigQuery's discovery document, which bq
	// fetches from any endpoint but Google's own.
	bigQueryDiscovery []byte

	http    *httptest.Server
	tunnels *chanListener
	inner   *http.Server

	mu       sync.Mutex
	requests []Request
	res      map[string]map[string]any // resources by "api:name"
	policies map[string]map[string]any // IAM policies by "api:resource"
	enabled  map[string]bool           // enabled services
	lagging  map[string]int            // service accounts still unknown to setIamPolicy, by email: the calls left
	opSeq    int
}

// NewServer starts a fake for project (whose number is number) on 127.0.0.1.
// bigQueryDiscovery is the discovery document to serve for BigQuery, which bq
// fetches from any endpoint but Google's own; the SDK ships one in
// platform/bq/discovery_next/bigquery.json.
func NewServer(project, number string, bigQueryDiscovery []byte) *Server {
	s := &Server{
		Project:           project,
		ProjectNumber:     number,
		bigQueryDiscovery: bigQueryDiscovery,
		res:               map[string]map[string]any{},
		policies:          map[string]map[string]any{},
		enabled:           map[string]bool{},
		lagging:           map[string]int{},
		tunnels:           &chanListener{conns: make(chan net.Conn), done: make(chan struct{})},
	}
	s.inner = &http.Server{Handler: s}
	go s.inner.Serve(s.tunnels) //nolint:errcheck // ends with ErrServerClosed
	s.http = httptest.NewServer(s)
	return s
}

// Port is the port the proxy listens on (host 127.0.0.1).
func (s *Server) Port() string {
	_, port, _ := net.SplitHostPort(s.http.Listener.Addr().String())
	return port
}

// Close stops the server.
func (s *Server) Close() {
	s.http.Close()
	s.inner.Close()
	s.tunnels.Close()
}

// Requests returns a copy of the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Resource returns a copy of the stored resource key ("api:name"), or nil.
func (s *Server) Resource(key string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return clone(s.res[key])
}

// Put stores a resource under key ("api:name"), as if it existed before.
func (s *Server) Put(key string, v map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.res[key] = v
}

// Keys returns the keys of the stored resources ("api:name"), sorted.
func (s *Server) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sortedKeys(s.res)
}

// Policies returns a copy of every IAM policy set, by "api:resource".
func (s *Server) Policies() map[string]map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]map[string]any{}
	for k, v := range s.policies {
		out[k] = clone(v)
	}
	return out
}

// ServeHTTP answers proxied requests (absolute URLs), requests tunnelled
// through CONNECT (bq's httplib2 tunnels even plain http) and refuses every
// host that is not *.fake.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	if r.URL.Host != "" {
		host = r.URL.Host
	}
	hostname := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		hostname = h
	}
	body, _ := io.ReadAll(r.Body)
	req := Request{Method: r.Method, Host: hostname, Path: r.URL.Path, Query: r.URL.RawQuery, Body: body, Type: r.Header.Get("Content-Type"), At: time.Now()}
	if !strings.HasSuffix(hostname, ".fake") {
		req.Status = http.StatusForbidden
		s.record(req)
		http.Error(w, "deploytest: refusing to reach a real host: "+host, http.StatusForbidden)
		return
	}
	if r.Method == http.MethodConnect {
		s.tunnel(w)
		return
	}
	req.API = apiName(hostname)
	s.route(w, req)
}

// apiName maps "pubsub.fake" and "us-central1-run.fake" to "pubsub", "run".
func apiName(hostname string) string {
	name := strings.TrimSuffix(hostname, ".fake")
	if i := strings.LastIndexByte(name, '-'); i >= 0 {
		name = name[i+1:]
	}
	return name
}

func (s *Server) record(r Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, r)
}

// route dispatches a request to the API's handler and records it.
func (s *Server) route(w http.ResponseWriter, r Request) {
	handlers := map[string]func(Request) (int, any){
		"serviceusage":         s.serviceUsage,
		"cloudresourcemanager": s.resourceManager,
		"iam":                  s.iam,
		"storage":              s.storage,
		"pubsub":               s.pubsub,
		"bigquery":             s.bigquery,
		"cloudfunctions":       s.functions,
		"eventarc":             s.eventarc,
		"run":                  s.run,
		"cloudbuild":           s.cloudBuild,
		"artifactregistry":     s.artifactRegistry,
		"monitoring":           s.monitoring,
	}
	handle, ok := handlers[r.API]
	if !ok {
		handle = func(r Request) (int, any) { return notFound(r) }
	}
	s.mu.Lock()
	status, out := handle(r)
	r.Status = status
	s.requests = append(s.requests, r)
	b, err := json.Marshal(out) // under the lock: out may be a stored resource
	s.mu.Unlock()
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":500,"message":"marshal"}}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	w.Write(b) //nolint:errcheck // the client sees a short body
}
