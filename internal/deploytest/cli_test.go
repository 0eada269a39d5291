package deploytest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const (
	project       = "proj-1"
	projectNumber = "123456789012"
)

// apisOverridden are the APIs whose endpoints point at the fake; every other
// Google host is reached through the proxy too, and refused there.
var apisOverridden = []string{
	"serviceusage", "cloudresourcemanager", "iam", "pubsub", "cloudfunctions",
	"eventarc", "run", "cloudbuild", "artifactregistry", "bigquery", "monitoring",
}

// repoRoot is the repository root, where deploy.sh lives.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "deploy.sh")); err != nil {
		t.Fatalf("deploy.sh not found at the repository root: %v", err)
	}
	return root
}

// requireCLIs skips the test when gcloud or bq is missing, unless CI=true.
func requireCLIs(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"gcloud", "bq", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not found on PATH (CI=true makes this fatal): %v", tool, err)
			}
			t.Skipf("%s not found on PATH: install the Google Cloud SDK to run deploy.sh offline", tool)
		}
	}
}

// bigQueryDiscovery reads the BigQuery discovery document the SDK ships.
func bigQueryDiscovery(t *testing.T) []byte {
	t.Helper()
	bq, err := exec.LookPath("bq")
	if err != nil {
		t.Fatal(err)
	}
	if bq, err = filepath.EvalSymlinks(bq); err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(filepath.Dir(bq)) // <sdk>/bin/bq
	doc, err := os.ReadFile(filepath.Join(root, "platform", "bq", "discovery_next", "bigquery.json"))
	if err != nil {
		t.Fatalf("BigQuery discovery document of the SDK: %v", err)
	}
	return doc
}

// cliEnv is the environment that makes gcloud and bq talk to s only: a
// throwaway configuration, a fake access token, every endpoint overridden to
// http://<api>.fake/ and s as the HTTP proxy, no prompts, no update checks,
// no usage reporting, no metadata server lookups.
func cliEnv(t *testing.T, s *Server) []string {
	t.Helper()
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("ya29.fake-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"LANG=C.UTF-8",
		"CLOUDSDK_CONFIG=" + filepath.Join(dir, "gcloud"),
		"CLOUDSDK_AUTH_ACCESS_TOKEN_FILE=" + token,
		"CLOUDSDK_CORE_PROJECT=" + project,
		"CLOUDSDK_CORE_DISABLE_PROMPTS=1",
		"CLOUDSDK_CORE_DISABLE_USAGE_REPORTING=1",
		"CLOUDSDK_CORE_CHECK_GCE_METADATA=false",
		"CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK=1",
		"CLOUDSDK_SURVEY_DISABLE_PROMPTS=1",
		"CLOUDSDK_PROXY_TYPE=http",
		"CLOUDSDK_PROXY_ADDRESS=127.0.0.1",
		"CLOUDSDK_PROXY_PORT=" + s.Port(),
		"CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE=http://storage.fake/storage/v1/",
		"BIGQUERYRC=" + filepath.Join(dir, "no-bigqueryrc"), // bq takes the endpoint from gcloud's override
	}
	for _, api := range apisOverridden {
		env = append(env, "CLOUDSDK_API_ENDPOINT_OVERRIDES_"+strings.ToUpper(api)+"=http://"+api+".fake/")
	}
	return env
}

// runDeploy runs deploy.sh from the repository root and returns its stdout
// and stderr.
func runDeploy(t *testing.T, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := repoRoot(t)
	cmd := exec.Command("bash", append([]string{filepath.Join(root, "deploy.sh")}, args...)...)
	cmd.Dir = root
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}
