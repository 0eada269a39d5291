package deploytest

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// find returns the requests with this method and API whose path ends with
// suffix.
func find(reqs []Request, method, api, suffix string) []Request {
	var out []Request
	for _, r := range reqs {
		if r.Method == method && r.API == api && strings.HasSuffix(r.Path, suffix) {
			out = append(out, r)
		}
	}
	return out
}

// one returns the only request find finds, failing the test otherwise.
func one(t *testing.T, reqs []Request, method, api, suffix string) Request {
	t.Helper()
	got := find(reqs, method, api, suffix)
	if len(got) != 1 {
		t.Fatalf("%d requests %s %s ...%s, want 1", len(got), method, api, suffix)
	}
	return got[0]
}

// binding is one role granted to one member on one resource.
type binding struct{ resource, role, member string }

func (b binding) String() string { return b.resource + ": " + b.role + " -> " + b.member }

// grantedBindings returns every binding of every IAM policy the requests set.
func grantedBindings(t *testing.T, reqs []Request) []binding {
	t.Helper()
	var out []binding
	for _, r := range reqs {
		var resource string
		var policy struct {
			Bindings []struct {
				Role    string   `json:"role"`
				Members []string `json:"members"`
			} `json:"bindings"`
		}
		body := r.Body
		switch {
		case r.Method == http.MethodPost && strings.HasSuffix(r.Path, ":setIamPolicy"):
			resource = r.API + ":" + strings.TrimSuffix(r.Path, ":setIamPolicy")
			var wrapped struct {
				Policy json.RawMessage `json:"policy"`
			}
			if err := json.Unmarshal(body, &wrapped); err != nil {
				t.Fatalf("%s: %v", r, err)
			}
			body = wrapped.Policy
		case r.Method == http.MethodPut && r.API == "storage" && strings.HasSuffix(r.Path, "/iam"):
			resource = r.API + ":" + strings.TrimSuffix(r.Path, "/iam")
		default:
			continue
		}
		if err := json.Unmarshal(body, &policy); err != nil {
			t.Fatalf("%s: %v", r, err)
		}
		for _, b := range policy.Bindings {
			for _, m := range b.Members {
				out = append(out, binding{resource, b.Role, m})
			}
		}
	}
	return uniqueBindings(out)
}

func uniqueBindings(bs []binding) []binding {
	seen := map[binding]bool{}
	var out []binding
	for _, b := range bs {
		if !seen[b] {
			seen[b] = true
			out = append(out, b)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// isCreate reports whether a request creates a resource, enables an API or
// uploads the metadata file: what a second run must not do. Deploying the
// code again (function update, source upload, build) is not a create.
func isCreate(r Request) bool {
	switch {
	case r.Method == http.MethodPut && r.API == "pubsub":
		return true // topics and subscriptions are created with PUT
	case r.Method != http.MethodPost:
		return false
	case strings.HasSuffix(r.Path, ":batchEnable"), strings.HasSuffix(r.Path, ":enable"):
		return true
	case strings.Contains(r.Path, ":"):
		return false // getIamPolicy, setIamPolicy (compared separately), generateUploadUrl, builds:submit
	case r.API == "storage" && strings.HasPrefix(r.Path, "/upload/"):
		return !strings.Contains(r.Path, "/b/run-sources-") // Cloud Run's source upload is the deploy
	}
	return true // POST to a collection: service accounts, buckets, datasets, tables, functions, services, repositories
}

// jsonEqual reports whether two JSON documents hold the same values.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}

// field reads a nested field of a JSON object as JSON text ("" if absent).
func field(m map[string]any, path ...string) string {
	v := jsonPath(m, path...)
	if v == nil {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// checkUploadedSource checks the function's source archive against
// .gcloudignore: what the build needs is in, tests and tools are out.
func checkUploadedSource(t *testing.T, archive []byte) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
	if err != nil {
		t.Fatalf("uploaded source is not a zip archive: %v", err)
	}
	names := map[string]bool{}
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/") {
			continue // gcloud archives directory entries even when it leaves their files out
		}
		names[f.Name] = true
		switch {
		case strings.HasSuffix(f.Name, "_test.go"),
			strings.HasPrefix(f.Name, "internal/"), strings.HasPrefix(f.Name, "cmd/"),
			strings.HasPrefix(f.Name, ".git/"), strings.HasPrefix(f.Name, ".ci/"),
			strings.HasSuffix(f.Name, ".md"), f.Name == "deploy.sh",
			strings.Contains(f.Name, "testdata/") && f.Name != "testdata/devices.csv":
			t.Errorf("uploaded source contains %s, which .gcloudignore should leave out", f.Name)
		}
	}
	want := []string{"go.mod", "go.sum", "sink/schema/rows.json", "sink/schema/error_records.json"}
	if _, err := os.Stat("../../testdata/devices.csv"); err == nil {
		want = append(want, "testdata/devices.csv") // embedded by the root package
	}
	for _, name := range want {
		if !names[name] {
			t.Errorf("uploaded source lacks %s", name)
		}
	}
}
