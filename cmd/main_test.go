package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
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

func TestBadConfigurationExitsNonZero(t *testing.T) {
	for _, setting := range []string{"METADATA_TTL=soon", "METADATA_URI=" + filepath.Join(t.TempDir(), "missing.csv")} {
		name, _, _ := strings.Cut(setting, "=")
		out, err := runner(setting, "LOCAL_ONLY=true", "PORT=0").CombinedOutput()
		if _, ok := err.(*exec.ExitError); !ok || !strings.Contains(string(out), name) {
			t.Errorf("runner with %s: err %v, output %q; want a non-zero exit naming %s", setting, err, out, name)
		}
	}
}

// TestDefaultRunPrintsCurlThatMakesARow: with no environment the runner
// serves the embedded sample metadata, and the curl command it prints
// yields an enriched row on stdout.
func TestDefaultRunPrintsCurlThatMakesARow(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
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
