package deploytest

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBQListsDatasets pins the bq behaviour deploy.sh relies on to tell an
// empty dataset from a missing one: `bq --format=json ls` succeeds with no
// output (or []) for the first and fails with "Not found" for the second.
func TestBQListsDatasets(t *testing.T) {
	requireCLIs(t)
	s := NewServer(project, projectNumber, bigQueryDiscovery(t))
	defer s.Close()
	s.Put("bigquery:projects/proj-1/datasets/empty", map[string]any{"id": "proj-1:empty"})
	env := cliEnv(t, s)
	for _, tc := range []struct {
		dataset string
		ok      bool
		match   func(out string) bool
	}{
		{"empty", true, func(out string) bool { return out == "" || out == "[]" }},
		{"missing", false, func(out string) bool { return strings.Contains(out, "Not found") }},
	} {
		cmd := exec.Command("bq", "--format=json", "ls", "--max_results=10000", "proj-1:"+tc.dataset)
		cmd.Env = env
		b, err := cmd.CombinedOutput()
		if out := strings.TrimSpace(string(b)); (err == nil) != tc.ok || !tc.match(out) {
			t.Errorf("bq ls proj-1:%s = %q, %v; want success %v", tc.dataset, out, err, tc.ok)
		}
	}
}
