package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/devicestream/enrichevent/internal/bqfake"
	"github.com/devicestream/enrichevent/sink"
)

// TestMain lets the tests run this binary as the local runner: with
// RUN_MAIN=1 it is main, not the tests.
func TestMain(m *testing.M) {
	if os.Getenv("RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// runner returns the local runner as a command with only env set, as on a
// fresh machine.
func runner(env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append([]string{"RUN_MAIN=1", "PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	return cmd
}

// TestBadConfigurationExitsNonZero: a bad setting of the function or of
// the runner, or a port in use, stops the runner before its banner says it
// listens, naming the problem.
func TestBadConfigurationExitsNonZero(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, busyPort, _ := net.SplitHostPort(busy.Addr().String())
	for _, tc := range []struct{ env, want string }{
		{"METADATA_TTL=soon", "METADATA_TTL"},
		{"METADATA_URI=" + filepath.Join(t.TempDir(), "missing.csv"), "METADATA_URI"},
		{"PORT=abc", `PORT "abc" is not a port number`},
		{"LOCAL_ONLY=yes", `LOCAL_ONLY "yes" is not true or false`},
		{"PORT=" + busyPort, "address already in use"},
	} {
		out, err := runner("LOCAL_ONLY=true", "PORT=0", tc.env).CombinedOutput()
		if _, ok := err.(*exec.ExitError); !ok || !strings.Contains(string(out), tc.want) || strings.Contains(string(out), "listening") {
			t.Errorf("runner with %s: err %v, output %q; want a non-zero exit saying %q, and no banner", tc.env, err, out, tc.want)
		}
	}
}

// TestDefaultRunPrintsCurlThatMakesARow: with no environment the runner
// serves the embedded sample metadata, and the curl command it prints
// yields an enriched row on stdout.
func TestDefaultRunPrintsCurlThatMakesARow(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and curl is not installed: %v", err)
		}
		t.Skip("curl not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	cmd := runner("PORT="+port, "LOCAL_ONLY=true")
	var stdout syncBuffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	curl := ""
	sc := bufio.NewScanner(stderr)
	for sc.Scan() && curl == "" {
		if strings.HasPrefix(sc.Text(), "curl ") {
			curl = sc.Text()
		}
	}
	go io.Copy(io.Discard, stderr)
	if curl == "" {
		t.Fatal("the runner printed no curl command")
	}
	var out []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if out, err = exec.Command("bash", "-c", curl+" -s -o /dev/null -w '%{http_code}'").Output(); err == nil && string(out) == "204" {
			break
		}
	}
	if string(out) != "204" {
		t.Fatalf("the printed curl answered %q (%v), want 204", out, err)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !strings.Contains(stdout.String(), `"row"`); {
		time.Sleep(20 * time.Millisecond)
	}
	if s := stdout.String(); !strings.Contains(s, `"device_found":true`) || !strings.Contains(s, `"asset_tag":"AT-100231"`) {
		t.Errorf("stdout = %q, want an enriched row of sample device vr-0001", s)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// drainRun is the runner as on Cloud Run (K_SERVICE set), writing to a
// fake BigQuery that holds every append until release, with one request
// in flight.
type drainRun struct {
	bq       *bqfake.Server
	cmd      *exec.Cmd
	stderr   *syncBuffer
	release  func()
	answered chan int      // the request's status, 0 if it got none
	exited   chan struct{} // closed once waitErr is set
	waitErr  error
}

// startDrainRun starts the runner and sends it one request, which waits
// for its append until release.
func startDrainRun(t *testing.T) *drainRun {
	bq, err := bqfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bq.Close)
	for table, schema := range map[string]func() (*sink.TableSchema, error){"events": sink.RowsSchema, "events_error_records": sink.ErrorRecordsSchema} {
		s, err := schema()
		if err != nil {
			t.Fatal(err)
		}
		if err := bq.AddTableJSON("p", "d", table, s.JSON); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	ln.Close()
	// As on Cloud Run, where METADATA_URI has no default: the runner's comes
	// after the function's start-up check.
	r := &drainRun{bq: bq, stderr: &syncBuffer{}, answered: make(chan int, 1), exited: make(chan struct{})}
	r.cmd = runner("PORT="+port, "LOCAL_ONLY=true", "K_SERVICE=enrich-event", "METADATA_URI=embedded:testdata/devices.csv", "BQ_TABLE=p.d.events",
		"BIGQUERY_EMULATOR_HOST="+bq.RESTEndpoint(), "BIGQUERY_STORAGE_EMULATOR_HOST="+bq.GRPCAddr())
	r.cmd.Stdout, r.cmd.Stderr = io.Discard, r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		r.waitErr = r.cmd.Wait()
		close(r.exited)
	}()
	t.Cleanup(func() {
		r.cmd.Process.Kill()
		<-r.exited
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the runner is not listening after 10 s; stderr %q", r.stderr.String())
		}
	}
	r.release = bq.Hold()
	t.Cleanup(r.release)
	go func() {
		body := `{"message":{"data":"eyJkZXZpY2VfaWQiOiJ2ci0wMDAxIn0=","messageId":"sigterm-1"}}`
		resp, err := http.Post("http://"+addr+"/", "application/json", strings.NewReader(body))
		if err != nil {
			r.answered <- 0
			return
		}
		resp.Body.Close()
		r.answered <- resp.StatusCode
	}()
	for deadline := time.Now().Add(10 * time.Second); bq.Appends() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no append reached the fake in 10 s; stderr %q", r.stderr.String())
		}
	}
	return r
}

// TestSIGTERMAnswersRequestsInFlight: on Cloud Run (K_SERVICE set) SIGTERM
// lets the requests in flight finish before the process exits. The request
// here waits for its BigQuery append, which the fake holds until after the
// signal.
func TestSIGTERMAnswersRequestsInFlight(t *testing.T) {
	r := startDrainRun(t)
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.exited:
		t.Fatalf("the runner exited on SIGTERM with a request in flight: %v; stderr %q", r.waitErr, r.stderr.String())
	case <-time.After(300 * time.Millisecond):
	}
	r.release()
	if code := <-r.answered; code != http.StatusNoContent {
		t.Errorf("the request in flight at SIGTERM was answered %d, want 204", code)
	}
	select {
	case <-r.exited:
		if r.waitErr != nil {
			t.Errorf("the runner exited with %v after draining, want status 0", r.waitErr)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the runner still running 15 s after SIGTERM")
	}
	if n := len(r.bq.Rows("p", "d", "events")); n != 1 {
		t.Errorf("the fake holds %d rows, want the 1 of the request", n)
	}
	if !strings.Contains(r.stderr.String(), "stopping on SIGTERM") {
		t.Errorf("stderr %q lacks the stopping line", r.stderr.String())
	}
}

// TestSIGTERMDrainIsBounded: a request that does not finish holds the
// process at most 9 s after SIGTERM, short of Cloud Run's SIGKILL at 10 s,
// and the stopping line says one request was still in flight.
func TestSIGTERMDrainIsBounded(t *testing.T) {
	r := startDrainRun(t) // its append is never released
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.exited:
		if r.waitErr != nil {
			t.Errorf("the runner exited with %v, want status 0", r.waitErr)
		}
	case <-time.After(30 * time.Second): // liveness: the bound is 9 s
		t.Fatal("the runner still running 30 s after SIGTERM with a request that never finishes")
	}
	if s := r.stderr.String(); !strings.Contains(s, "stopping on SIGTERM") || !strings.Contains(s, `"in_flight":1`) {
		t.Errorf("stderr %q lacks the stopping line with one request in flight", s)
	}
}
