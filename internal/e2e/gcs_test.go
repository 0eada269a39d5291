package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

// gcs is fake-gcs-server behind a front of our own: the front is what the
// function talks to (STORAGE_EMULATOR_HOST), and it can be switched to
// answer 503 ("GCS down"), can slow media downloads down, and counts them.
type gcs struct {
	fake   *fakestorage.Server
	front  *httptest.Server
	bucket string

	down    atomic.Bool
	delay   atomic.Int64 // nanoseconds each media download waits before being served
	refused atomic.Int64 // requests answered 503 while down

	mu        sync.Mutex
	downloads map[string]int // media downloads by object name
}

// startGCS starts fake-gcs-server (http, 127.0.0.1, a free port) with an
// empty bucket, and the front.
func startGCS(bucket string) (*gcs, error) {
	fake, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1"})
	if err != nil {
		return nil, fmt.Errorf("fake-gcs-server: %w", err)
	}
	fake.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bucket})
	target, err := url.Parse(fake.URL())
	if err != nil {
		fake.Stop()
		return nil, err
	}
	g := &gcs{fake: fake, bucket: bucket, downloads: make(map[string]int)}
	proxy := httputil.NewSingleHostReverseProxy(target)
	g.front = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.down.Load() {
			g.refused.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"error":{"code":503,"message":"e2e: GCS is down"}}`)
			return
		}
		if obj, ok := mediaObject(r); ok {
			g.mu.Lock()
			g.downloads[obj]++
			g.mu.Unlock()
			time.Sleep(time.Duration(g.delay.Load()))
		}
		proxy.ServeHTTP(w, r)
	}))
	return g, nil
}

// mediaObject reports whether r downloads an object's bytes, and which.
// With storage.WithJSONReads the client sends
// GET /storage/v1/b/BUCKET/o/OBJECT?alt=media; the XML reader's and the
// upload-era /download/storage/v1/... forms are counted too.
func mediaObject(r *http.Request) (string, bool) {
	if r.Method != http.MethodGet {
		return "", false
	}
	p := r.URL.EscapedPath()
	download := strings.HasPrefix(p, "/download/")
	if !download && r.URL.Query().Get("alt") != "media" {
		return "", false
	}
	_, obj, ok := strings.Cut(p, "/o/")
	if !ok {
		return "", false
	}
	name, err := url.PathUnescape(obj)
	if err != nil {
		return obj, true
	}
	return name, true
}

// host is the front's host:port, for STORAGE_EMULATOR_HOST.
func (g *gcs) host() string { return strings.TrimPrefix(g.front.URL, "http://") }

// put creates or overwrites an object, behind the front's back, and returns
// its new generation.
func (g *gcs) put(name string, data []byte) (int64, error) {
	if err := g.fake.CreateObjectStreaming(fakestorage.Object{
		ObjectAttrs: fakestorage.ObjectAttrs{BucketName: g.bucket, Name: name, ContentType: "text/csv"},
		Content:     data,
	}.StreamingObject()); err != nil {
		return 0, fmt.Errorf("put gs://%s/%s: %w", g.bucket, name, err)
	}
	obj, err := g.fake.GetObject(g.bucket, name)
	if err != nil {
		return 0, fmt.Errorf("get gs://%s/%s: %w", g.bucket, name, err)
	}
	return obj.Generation, nil
}

// downloadsOf returns how many media downloads of object name went through
// the front.
func (g *gcs) downloadsOf(name string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.downloads[name]
}

// close stops the front and the fake.
func (g *gcs) close() {
	g.front.Close()
	g.fake.Stop()
}
