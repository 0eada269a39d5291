package cache_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/option"

	"github.com/devicestream/enrichevent/cache"
)

const (
	testBucket = "meta"
	testObject = "devices/devices.txt"
)

// gcsFixture is fake-gcs-server on a loopback port, driven through the real
// storage client.
type gcsFixture struct {
	server *fakestorage.Server
	http   *httptest.Server
	client *storage.Client
	gen    int64 // generation of the last put
	// refuse, if set, answers a request with the status it returns
	// (0: served as usual), in front of fake-gcs-server.
	refuse atomic.Pointer[func(*http.Request) int]
}

// readModes are the storage client's two download paths: XML (the default,
// used against real GCS) and JSON (storage.WithJSONReads, what emulators
// usually need). fake-gcs-server serves XML reads only for its PublicHost,
// so the server is given its own address as PublicHost.
var readModes = []struct {
	name string
	opts []option.ClientOption
}{
	{"xml reads", nil},
	{"json reads", []option.ClientOption{storage.WithJSONReads()}},
}

func newGCS(t *testing.T, readOpts []option.ClientOption) *gcsFixture {
	t.Helper()
	return newGCSWith(t, readOpts, false)
}

// newGCSWith is newGCS with the bucket's object versioning on or off.
func newGCSWith(t *testing.T, readOpts []option.ClientOption, versioning bool) *gcsFixture {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		NoListener: true, Scheme: "http", PublicHost: l.Addr().String(),
	})
	if err != nil {
		t.Fatalf("fake-gcs-server: %v", err)
	}
	server.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: testBucket, VersioningEnabled: versioning})
	g := &gcsFixture{server: server}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f := g.refuse.Load(); f != nil {
			if code := (*f)(r); code != 0 {
				http.Error(w, "refused by the test", code)
				return
			}
		}
		server.HTTPHandler().ServeHTTP(w, r)
	})
	ts := &httptest.Server{Listener: l, Config: &http.Server{Handler: handler}}
	ts.Start()
	t.Cleanup(ts.Close)
	opts := append([]option.ClientOption{
		option.WithEndpoint(ts.URL + "/storage/v1/"),
		option.WithoutAuthentication(),
	}, readOpts...)
	client, err := storage.NewClient(context.Background(), opts...)
	if err != nil {
		t.Fatalf("storage.NewClient: %v", err)
	}
	t.Cleanup(func() { client.Close() })
	g.http, g.client = ts, client
	return g
}

// isListing reports whether r lists the bucket's objects.
func isListing(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/b/"+testBucket+"/o")
}

// isDownloadOf reports whether r downloads generation gen of the object,
// by the XML or the JSON API.
func isDownloadOf(r *http.Request, gen int64) bool {
	return r.URL.Query().Get("generation") == fmt.Sprint(gen) &&
		(r.URL.Query().Get("alt") == "media" || !strings.Contains(r.URL.Path, "/storage/v1/"))
}

// put writes the object with the next generation (explicit: the server
// derives generations from the wall clock in microseconds).
func (g *gcsFixture) put(content, encoding string) int64 {
	g.gen++
	g.server.CreateObject(fakestorage.Object{
		ObjectAttrs: fakestorage.ObjectAttrs{
			BucketName: testBucket, Name: testObject, Generation: g.gen,
			ContentType: "text/plain", ContentEncoding: encoding,
		},
		Content: []byte(content),
	})
	return g.gen
}

func (g *gcsFixture) delete(t *testing.T) {
	t.Helper()
	if err := g.client.Bucket(testBucket).Object(testObject).Delete(context.Background()); err != nil {
		t.Fatalf("delete object: %v", err)
	}
}

func TestGCSSource(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(lines(3)))
	zw.Close()
	for _, mode := range readModes {
		t.Run(mode.name, func(t *testing.T) {
			g := newGCS(t, mode.opts)
			src := cache.NewGCSSource(g.client, testBucket, testObject)
			if s := src.String(); s != "gs://meta/devices/devices.txt" {
				t.Errorf("String() = %q, want gs://meta/devices/devices.txt", s)
			}
			wantGzip := gz.String() // read as stored
			if mode.opts != nil {
				wantGzip = lines(3) // decompressed by the transport (google-cloud-go#7786)
			}
			for _, tc := range []struct {
				name, content, encoding, want string
			}{
				{"plain", lines(3), "", lines(3)},
				{"gzip-encoded", gz.String(), "gzip", wantGzip},
			} {
				testGCSSourceVersion(t, g, src, tc.name, tc.content, tc.encoding, tc.want)
			}
			g.delete(t)
			if _, err := src.Stat(context.Background()); !errors.Is(err, storage.ErrObjectNotExist) {
				t.Errorf("Stat() of a deleted object: error = %v, want storage.ErrObjectNotExist", err)
			}
		})
	}
}

// testGCSSourceVersion stores content, checks Stat and Open, then replaces
// the object and checks that the old generation is gone.
func testGCSSourceVersion(t *testing.T, g *gcsFixture, src cache.Source, name, content, encoding, want string) {
	t.Run(name, func(t *testing.T) {
		gen := g.put(content, encoding)
		v, err := src.Stat(context.Background())
		if err != nil {
			t.Fatalf("Stat: %v", err)
		}
		wantV := cache.Version{Generation: gen, Size: int64(len(content)), Name: testObject,
			ContentType: "text/plain", ContentEncoding: encoding}
		if v != wantV {
			t.Errorf("Stat() = %+v, want %+v", v, wantV)
		}
		if got := readAll(t, src, v); got != want {
			t.Errorf("Open(%d) read %q, want %q", gen, got, want)
		}
		g.put(lines(4), "")
		if _, err := src.Open(context.Background(), v); !errors.Is(err, cache.ErrVersionGone) {
			t.Errorf("Open(replaced generation %d) error = %v, want ErrVersionGone", gen, err)
		}
	})
}

func TestParseGCSURI(t *testing.T) {
	for _, tc := range []struct {
		uri            string
		bucket, object string
		ok             bool
	}{
		{"gs://b/o", "b", "o", true},
		{"gs://b/o/with/slashes.csv.gz", "b", "o/with/slashes.csv.gz", true},
		{"gs://b/", "", "", false},
		{"gs://b", "", "", false},
		{"gs:///o", "", "", false},
		{"s3://b/o", "", "", false},
		{"/local/path.csv", "", "", false},
		{"", "", "", false},
	} {
		b, o, ok := cache.ParseGCSURI(tc.uri)
		if b != tc.bucket || o != tc.object || ok != tc.ok {
			t.Errorf("ParseGCSURI(%q) = %q, %q, %v, want %q, %q, %v", tc.uri, b, o, ok, tc.bucket, tc.object, tc.ok)
		}
	}
}

// newGCSCache returns a warm cache of lines over the fixture's object.
func newGCSCache(t *testing.T, g *gcsFixture, clock *fakeClock, loadTimeout time.Duration) *cache.Cache[[]string] {
	t.Helper()
	c := cache.New(cache.Config[[]string]{
		Source:      cache.NewGCSSource(g.client, testBucket, testObject),
		Parse:       parseLines,
		Size:        countLines,
		Now:         clock.Now,
		LoadTimeout: loadTimeout,
		Logger:      slog.New(slog.DiscardHandler),
	})
	t.Cleanup(c.Wait)
	if _, err := c.Get(context.Background()); err != nil {
		t.Fatalf("first Get: %v", err)
	}
	return c
}

// getWait calls Get, waits for the refresh it may start, and returns the
// snapshot Get returned.
func getWait(t *testing.T, c *cache.Cache[[]string]) *cache.Snapshot[[]string] {
	t.Helper()
	s, err := c.Get(context.Background())
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	c.Wait()
	return s
}

func TestGCSReplacedObjectUsedAfterTTL(t *testing.T) {
	for _, mode := range readModes {
		t.Run(mode.name, func(t *testing.T) { testGCSReplacedObjectUsedAfterTTL(t, mode.opts) })
	}
}

func testGCSReplacedObjectUsedAfterTTL(t *testing.T, readOpts []option.ClientOption) {
	g, clock := newGCS(t, readOpts), newClock()
	g.put(lines(3), "")
	c := newGCSCache(t, g, clock, 0)
	gen2 := g.put(lines(4), "")
	clock.Advance(time.Hour - 1)
	if s := getWait(t, c); s.Version.Generation != 1 {
		t.Errorf("Get() before TTL: generation %d, want 1", s.Version.Generation)
	}
	clock.Advance(1)
	getWait(t, c)
	if s := getWait(t, c); s.Version.Generation != gen2 || len(s.Value) != 4 {
		t.Errorf("Get() after TTL: generation %d, %d lines, want %d, 4", s.Version.Generation, len(s.Value), gen2)
	}
	clock.Advance(time.Hour)
	getWait(t, c)
	if st := c.Stats(); st.Loads != 2 || st.Downloads != 2 || st.Checks != 1 {
		t.Errorf("Stats() Loads, Downloads, Checks = %d, %d, %d, want 2, 2, 1", st.Loads, st.Downloads, st.Checks)
	}
}

func TestGCSServesLastGoodWhenUnavailable(t *testing.T) {
	for _, mode := range readModes {
		t.Run(mode.name, func(t *testing.T) { testGCSServesLastGoodWhenUnavailable(t, mode.opts) })
	}
}

func testGCSServesLastGoodWhenUnavailable(t *testing.T, readOpts []option.ClientOption) {
	for _, tc := range []struct {
		name        string
		loadTimeout time.Duration // bounds the client's retries when the server is gone
		breakIt     func(g *gcsFixture, t *testing.T)
	}{
		{"object deleted", 0, (*gcsFixture).delete},
		{"server stopped", 300 * time.Millisecond, func(g *gcsFixture, _ *testing.T) { g.http.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, clock := newGCS(t, readOpts), newClock()
			g.put(lines(3), "")
			c := newGCSCache(t, g, clock, tc.loadTimeout)
			tc.breakIt(g, t)
			clock.Advance(time.Hour)
			getWait(t, c)
			if s := getWait(t, c); s.Version.Generation != 1 || len(s.Value) != 3 {
				t.Errorf("Get() = generation %d, %d lines, want the last good: 1, 3", s.Version.Generation, len(s.Value))
			}
			if st := c.Stats(); st.Failures != 1 || st.LastError == "" {
				t.Errorf("Stats() Failures, LastError = %d, %q, want 1 and the error", st.Failures, st.LastError)
			}
		})
	}
}

func TestGCSTruncatedReplacementRejected(t *testing.T) {
	for _, mode := range readModes {
		t.Run(mode.name, func(t *testing.T) { testGCSTruncatedReplacementRejected(t, mode.opts) })
	}
}

func testGCSTruncatedReplacementRejected(t *testing.T, readOpts []option.ClientOption) {
	full := lines(10)
	for _, tc := range []struct {
		name      string
		truncated string
		wantErr   string
	}{
		{"cut mid-line", full[:len(full)-2], "partial last line"},
		{"cut at a line end", lines(4), cache.ErrRejected.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, clock := newGCS(t, readOpts), newClock()
			g.put(full, "")
			c := newGCSCache(t, g, clock, 0)
			g.put(tc.truncated, "")
			clock.Advance(time.Hour)
			getWait(t, c)
			if s := getWait(t, c); s.Version.Generation != 1 || len(s.Value) != 10 {
				t.Errorf("Get() = generation %d, %d lines, want the last good: 1, 10", s.Version.Generation, len(s.Value))
			}
			if st := c.Stats(); st.Failures != 1 || !strings.Contains(st.LastError, tc.wantErr) {
				t.Errorf("Stats() Failures, LastError = %d, %q, want 1, containing %q", st.Failures, st.LastError, tc.wantErr)
			}
		})
	}
}

// TestGCSStatGivesUpOnASilentServer: a GCS endpoint that accepts
// connections and never answers fails Stat after gcsStatTimeout (10 s), so
// a cold start answers 5xx instead of holding its requests for the whole
// LoadTimeout.
func TestGCSStatGivesUpOnASilentServer(t *testing.T) {
	cache.SetGCSStatTimeout(t, 200*time.Millisecond)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	accepted := make(chan struct{})
	go func() { // holds every connection, unanswered, until the listener closes
		defer close(accepted)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-accepted
		for _, c := range conns {
			c.Close()
		}
	})
	client, err := storage.NewClient(context.Background(),
		option.WithEndpoint("http://"+l.Addr().String()+"/storage/v1/"), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	src := cache.NewGCSSource(client, testBucket, testObject)
	_, err = returnsWithin(t, "Stat of a silent server, bound 200ms,", func() (cache.Version, error) {
		return src.Stat(context.Background())
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stat of a silent server: %v, want context.DeadlineExceeded", err)
	}
}

// TestGCSRequestTriedAtMostFourTimes: a GCS that answers 503 gets each
// request four times (three retries, about a second of backoff), so that a
// cold start with GCS down answers 5xx soon and Pub/Sub redelivers, rather
// than the client retrying until the load's timeout.
func TestGCSRequestTriedAtMostFourTimes(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		requests.Add(1)
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	client, err := storage.NewClient(context.Background(),
		option.WithEndpoint(srv.URL+"/storage/v1/"), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	src := cache.NewGCSSource(client, testBucket, testObject)
	if _, err := returnsWithin(t, "Stat of a GCS answering 503", func() (cache.Version, error) {
		return src.Stat(context.Background())
	}); err == nil {
		t.Fatal("Stat of a GCS answering 503 succeeded")
	}
	if n := requests.Load(); n != 4 {
		t.Errorf("GCS got %d requests for one Stat, want 4", n)
	}
}

// TestGCSColdStartFallsBackToAnOlderVersion: in a bucket with object
// versioning, an instance that starts after a bad upload serves the newest
// older generation that passes (what the warm instances kept) instead of
// failing every request, logs the rejection at ERROR, does not download
// the bad generation again, and loads the next good upload as usual.
// Without versioning it fails, as before.
func TestGCSColdStartFallsBackToAnOlderVersion(t *testing.T) {
	for _, mode := range readModes {
		t.Run(mode.name, func(t *testing.T) {
			g, clock, logs := newGCSWith(t, mode.opts, true), newClock(), &logBuffer{}
			g.put(lines(5), "")                // generation 1: good
			g.put(lines(3), "")                // generation 2: good, the one the fallback should pick
			g.put(lines(4)+"cut mid-line", "") // generation 3: refused
			src := newCountingSource(cache.NewGCSSource(g.client, testBucket, testObject))
			c := cache.New(cache.Config[[]string]{
				Source: src, Parse: parseLines, Size: countLines, Now: clock.Now,
				Logger: slog.New(slog.NewJSONHandler(logs, nil)),
			})
			t.Cleanup(c.Wait)
			s, err := c.Get(context.Background())
			if err != nil || s.Version.Generation != 2 || len(s.Value) != 3 {
				t.Fatalf("cold Get after a bad upload = %v; want generation 2, the newest that passes, and its 3 lines", err)
			}
			recs := logs.records(t, "metadata rejected; serving an older version")
			if len(recs) != 1 || recs[0]["level"] != "ERROR" || recs[0]["rejected_generation"] != float64(3) || recs[0]["generation"] != float64(2) {
				t.Errorf("fallback log lines %v, want one ERROR naming generations 3 and 2", recs)
			}
			if st := c.Stats(); !strings.Contains(st.LastError, "partial last line") {
				t.Errorf("Stats().LastError = %q, want the rejection, as on a warm instance", st.LastError)
			}
			if n := src.opens.Load(); n != 2 {
				t.Errorf("the first load downloaded %d times, want 2: generations 3 and 2", n)
			}
			opens := src.opens.Load()
			clock.Advance(time.Hour)
			if s := getWait(t, c); s.Version.Generation != 2 {
				t.Errorf("after the TTL, Get = generation %d, want 2 kept", s.Version.Generation)
			}
			if n := src.opens.Load() - opens; n != 0 {
				t.Errorf("the check after the TTL downloaded %d times, want 0: generation 3 is still rejected", n)
			}
			g.put(lines(6), "") // generation 4: good
			clock.Advance(time.Hour)
			getWait(t, c)
			if s := getWait(t, c); s.Version.Generation != 4 || len(s.Value) != 6 {
				t.Errorf("after a good upload, Get = generation %d, %d lines; want 4, 6", s.Version.Generation, len(s.Value))
			}

			// Older versions that do not pass either: the first load fails,
			// and a retry does not download them again.
			g = newGCSWith(t, mode.opts, true)
			g.put("", "") // empty: refused
			g.put(lines(4)+"cut mid-line", "")
			src = newCountingSource(cache.NewGCSSource(g.client, testBucket, testObject))
			c = cache.New(cache.Config[[]string]{Source: src, Parse: parseLines, Size: countLines, Now: clock.Now,
				Logger: slog.New(slog.DiscardHandler)})
			t.Cleanup(c.Wait)
			if _, err := c.Get(context.Background()); !errors.Is(err, cache.ErrRejected) {
				t.Errorf("cold Get with no version that passes = %v, want ErrRejected", err)
			}
			opens = src.opens.Load()
			clock.Advance(2 * time.Second) // past the cold retry interval
			if _, err := c.Get(context.Background()); !errors.Is(err, cache.ErrRejected) {
				t.Errorf("cold Get retried = %v, want ErrRejected", err)
			}
			if n := src.opens.Load() - opens; n != 0 {
				t.Errorf("the retried first load downloaded %d times, want 0", n)
			}

			g = newGCSWith(t, mode.opts, false)
			g.put(lines(5), "")
			g.put(lines(4)+"cut mid-line", "")
			c = cache.New(cache.Config[[]string]{Source: cache.NewGCSSource(g.client, testBucket, testObject),
				Parse: parseLines, Size: countLines, Now: clock.Now, Logger: slog.New(slog.DiscardHandler)})
			t.Cleanup(c.Wait)
			if _, err := c.Get(context.Background()); !errors.Is(err, cache.ErrRejected) {
				t.Errorf("cold Get after a bad upload without versioning = %v, want ErrRejected", err)
			}
		})
	}
}

// TestGCSColdStartFallbackSkipsOnlyBadVersions: the fallback goes back past
// older versions that do not pass, up to the third, downloads each once
// (never the rejected one again), and ignores other objects whose names
// start with the object's name.
func TestGCSColdStartFallbackSkipsOnlyBadVersions(t *testing.T) {
	for _, tc := range []struct {
		name     string
		contents []string // generations 1, 2, ...; the last is live
		want     int64    // the generation served; 0: none
		opens    int64    // downloads by the first load
		unusable int      // WARNING lines "older metadata version not usable"
	}{
		{"the third older passes", []string{lines(2), lines(3), "", lines(1) + "cut", lines(4) + "cut"}, 2, 4, 2},
		{"a fourth is not tried", []string{lines(2), "", lines(1) + "cut", "", lines(4) + "cut"}, 0, 4, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, clock, logs := newGCSWith(t, nil, true), newClock(), &logBuffer{}
			for _, content := range tc.contents {
				g.put(content, "")
			}
			g.gen++ // an object named like the object's backup, newer than its older versions
			g.server.CreateObject(fakestorage.Object{
				ObjectAttrs: fakestorage.ObjectAttrs{BucketName: testBucket, Name: testObject + ".bak", Generation: g.gen - 2},
				Content:     []byte(lines(9)),
			})
			src := newCountingSource(cache.NewGCSSource(g.client, testBucket, testObject))
			c := cache.New(cache.Config[[]string]{Source: src, Parse: parseLines, Size: countLines, Now: clock.Now,
				Logger: slog.New(slog.NewJSONHandler(logs, nil))})
			t.Cleanup(c.Wait)
			s, err := c.Get(context.Background())
			switch {
			case tc.want == 0 && !errors.Is(err, cache.ErrRejected):
				t.Errorf("cold Get = %v, want ErrRejected: no older version within three passes", err)
			case tc.want != 0 && (err != nil || s.Version.Generation != tc.want):
				t.Errorf("cold Get = %v, %v; want generation %d", s, err, tc.want)
			}
			if n := src.opens.Load(); n != tc.opens {
				t.Errorf("the first load downloaded %d times, want %d (the rejected version, then each older one once)", n, tc.opens)
			}
			if n := len(logs.records(t, "older metadata version not usable")); n != tc.unusable {
				t.Errorf("%d WARNING lines for older versions that do not pass, want %d", n, tc.unusable)
			}
		})
	}
}

// TestGCSColdStartFallbackAfterAPassingFailure: a listing or a download of
// an older version that fails for a passing reason (the network, GCS
// answering 503, a missing permission) ends the search without skipping to
// an even older version, logs WARNING "metadata history unavailable", and
// is tried again after the backoff, not at each cold retry.
func TestGCSColdStartFallbackAfterAPassingFailure(t *testing.T) {
	for _, tc := range []struct {
		name   string
		refuse func(*http.Request) int
	}{
		{"download answers 503", func(r *http.Request) int {
			if isDownloadOf(r, 2) {
				return http.StatusServiceUnavailable
			}
			return 0
		}},
		{"listing forbidden", func(r *http.Request) int {
			if isListing(r) {
				return http.StatusForbidden
			}
			return 0
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, clock, logs := newGCSWith(t, nil, true), newClock(), &logBuffer{}
			g.put(lines(1), "")       // generation 1: good, older
			g.put(lines(2), "")       // generation 2: good, the one to serve
			g.put(lines(3)+"cut", "") // generation 3: refused
			var refused atomic.Int64
			refuse := func(r *http.Request) int {
				code := tc.refuse(r)
				if code != 0 {
					refused.Add(1)
				}
				return code
			}
			g.refuse.Store(&refuse)
			c := cache.New(cache.Config[[]string]{Source: cache.NewGCSSource(g.client, testBucket, testObject),
				Parse: parseLines, Size: countLines, Now: clock.Now, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
			t.Cleanup(c.Wait)
			if s, err := c.Get(context.Background()); !errors.Is(err, cache.ErrRejected) {
				t.Fatalf("cold Get while the history fails = %v, %v; want ErrRejected, not an older version than 2", s, err)
			}
			recs := logs.records(t, "metadata history unavailable")
			if len(recs) != 1 || recs[0]["level"] != "WARN" || recs[0]["retry_in"] != "30s" {
				t.Errorf("log lines %v, want one WARNING with retry_in 30s", recs)
			}
			n := refused.Load()
			clock.Advance(2 * time.Second) // a cold retry, within the backoff: no new look
			if _, err := c.Get(context.Background()); !errors.Is(err, cache.ErrRejected) {
				t.Errorf("cold Get retried = %v, want ErrRejected", err)
			}
			if refused.Load() != n || len(logs.records(t, "metadata history unavailable")) != 1 {
				t.Errorf("a cold retry within the backoff looked at the history again")
			}
			g.refuse.Store(nil)
			clock.Advance(30 * time.Second)
			if s, err := c.Get(context.Background()); err != nil || s.Version.Generation != 2 {
				t.Errorf("cold Get after the backoff, the failure over = %v, %v; want generation 2", s, err)
			}
		})
	}
}
