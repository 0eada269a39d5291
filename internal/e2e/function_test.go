package e2e

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// functionStartTimeout bounds the start of the function process (a race
// build on a busy machine is slow to start).
const functionStartTimeout = 30 * time.Second

// buildCommand builds the command pkg (./cmd, the local runner, or
// ./cmd/replay) of the module into dir, with the race detector when this
// test binary has it, and returns the binary's path.
func buildCommand(dir, pkg string) (string, error) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("module root not found from the test's directory: %w", err)
	}
	bin := filepath.Join(dir, "enrich-"+filepath.Base(pkg))
	args := []string{"build", "-o", bin}
	if raceBuild {
		args = append(args, "-race")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the go command is needed to build %s: %w", pkg, err)
	}
	cmd := exec.Command(goBin, append(args, pkg)...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s %s: %v\n%s", strings.Join(args, " "), pkg, err, out)
	}
	return bin, nil
}

// statSources stats every file of the module outside hidden directories.
// go test records the files a test stats (from m.Run on, not in TestMain)
// in its cache key: without this, a cached result would survive a change to
// the function, which this test binary does not import but builds and runs.
func statSources() {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return
	}
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return nil // a file that vanished while walking: nothing to record
		case d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != root:
			return filepath.SkipDir
		case d.Type().IsRegular():
			_, _ = os.Stat(path)
		}
		return nil
	})
}

// fnProcess is one run of the function binary.
type fnProcess struct {
	*process
	port int
}

// addr is the function's host:port.
func (f *fnProcess) addr() string { return "127.0.0.1:" + strconv.Itoa(f.port) }

// log is the function's stderr: its JSON log lines.
func (f *fnProcess) log() *logBuffer { return f.stderr }

// functionEnv returns the whole environment of the function process: the
// function's documented variables, nothing inherited but PATH and HOME.
func (h *harness) functionEnv(s *scenario, port int) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"PORT=" + strconv.Itoa(port),
		"LOCAL_ONLY=true",
		"METADATA_URI=gs://" + h.gcs.bucket + "/" + s.object,
		"STORAGE_EMULATOR_HOST=" + h.gcs.host(),
		"METADATA_TTL=" + metadataTTL.String(),
		"METADATA_MAX_STALENESS=10m",
		"METADATA_MISS_REFRESH_INTERVAL=1s",
		"MAX_PAYLOAD_BYTES=" + strconv.Itoa(maxPayloadBytes),
		"BQ_TABLE=" + h.project + "." + s.dataset + "." + rowsTable,
		"BIGQUERY_EMULATOR_HOST=" + strings.TrimPrefix(h.bq.RESTEndpoint(), "http://"),
		"BIGQUERY_STORAGE_EMULATOR_HOST=" + h.bq.GRPCAddr(),
		"BQ_WRITE_TIMEOUT=" + bqWriteTimeout.String(),
		"LOG_LEVEL=debug",
		// A race report does not stop the function; checkRaces finds it.
		"GORACE=halt_on_error=0",
	}
	return env
}

// startFunction starts the function for scenario s on port (0: a free
// port) and waits until it listens. It is killed when the test ends.
func (h *harness) startFunction(s *scenario, port int) *fnProcess {
	t := s.t
	t.Helper()
	if port == 0 {
		var err error
		if port, err = freePort(); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(h.bin)
	cmd.Env = h.functionEnv(s, port)
	p, err := startProcess(fmt.Sprintf("function #%d of %s", len(s.fns)+1, s.name), cmd)
	if err != nil {
		t.Fatal(err)
	}
	f := &fnProcess{process: p, port: port}
	s.fns = append(s.fns, f)
	t.Cleanup(f.kill)
	if err := f.waitListening(f.addr(), functionStartTimeout); err != nil {
		t.Fatal(err)
	}
	return f
}

// checkRaces fails the test if the (race-built) function reported a data
// race.
func (f *fnProcess) checkRaces(t *testing.T) {
	t.Helper()
	if strings.Contains(f.stderr.String(), "WARNING: DATA RACE") {
		t.Errorf("%s reported a data race:\n%s", f.name, f.stderr)
	}
}
