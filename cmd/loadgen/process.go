package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"
	"github.com/GoogleCloudPlatform/functions-framework-go/functions"
)

// bareEnv, when set in the environment, makes loadgen serve a baseline on
// 127.0.0.1:$PORT instead: a child process that the run compares the
// function with. Its value is the baseline: bareNetHTTP or bareFramework.
const bareEnv = "LOADGEN_BARE"

// bareWorkEnv carries -framework-work to the bare framework's process.
const bareWorkEnv = "LOADGEN_BARE_WORK"

const (
	bareNetHTTP   = "net/http"  // http.ListenAndServe, the floor
	bareFramework = "framework" // the same handler behind the functions framework
)

// serveBare serves a baseline: bareHandler(0), served by net/http as the
// functions framework serves (http.ListenAndServe), or bareHandler(work)
// registered with the framework like the function.
func serveBare(kind, port string, work time.Duration) error {
	switch kind {
	case bareNetHTTP:
		return http.ListenAndServe("127.0.0.1:"+port, bareHandler(0))
	case bareFramework:
		functions.HTTP("Bare", bareHandler(work))
		os.Setenv("FUNCTION_TARGET", "Bare")
		return funcframework.StartHostPort("127.0.0.1", port)
	}
	return fmt.Errorf("%s=%q: want %s or %s", bareEnv, kind, bareNetHTTP, bareFramework)
}

// bareHandler returns the baselines' handler: it reads the body and
// answers 204. With work > 0 it keeps its CPU busy for work between
// reading the body and answering, where the function does its own work
// (-framework-work).
func bareHandler(work time.Duration) http.HandlerFunc {
	if work <= 0 {
		return func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusNoContent)
		}
	}
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		for start := time.Now(); time.Since(start) < work; {
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// buildFunction builds the local runner (package pkg, ./cmd) into dir.
func buildFunction(pkg, dir string) (string, error) {
	return buildCommand(pkg, filepath.Join(dir, "enrichevent"))
}

// buildCommand builds package pkg, a command, into bin.
func buildCommand(pkg, bin string) (string, error) {
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s: %w", pkg, err)
	}
	return bin, nil
}

// server is a child process serving HTTP on addr.
type server struct {
	cmd     *exec.Cmd
	addr    string
	started time.Time

	log io.Writer // a copy of stderr, if not nil

	mu     sync.Mutex
	loads  []loadLine // "metadata loaded" log lines, in order
	tail   []string   // the last lines of stderr, for errors
	exited chan struct{}
}

// loadLine is one "metadata loaded" log line of the function.
type loadLine struct {
	Time       time.Time `json:"time"`
	DurationMS int64     `json:"duration_ms"`
	Bytes      int64     `json:"bytes"`
	Size       int       `json:"size"`
	Generation int64     `json:"generation"`
	seen       time.Time // when loadgen read the line
}

// startServer starts bin with env added to (a cleaned copy of) loadgen's
// environment, its stdout to stdout and a copy of its stderr to log (if
// not nil). The server's address is 127.0.0.1 and a free port, which is
// also passed as PORT.
func startServer(bin string, args []string, env map[string]string, stdout, log io.Writer) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	return startServerOn(port, bin, args, env, stdout, log)
}

// startServerOn is startServer on a given port.
func startServerOn(port, bin string, args []string, env map[string]string, stdout, log io.Writer) (*server, error) {
	s := &server{addr: "127.0.0.1:" + port, log: log, exited: make(chan struct{})}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = childEnv(env, "PORT="+port)
	s.cmd.Stdout = stdout
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	setDeathSignal(s.cmd)
	s.started = time.Now()
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go s.scan(stderr)
	return s, nil
}

// childEnv is loadgen's environment without the variables that would send
// the function's rows elsewhere, plus env and extra.
func childEnv(env map[string]string, extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if _, set := env[name]; !set && name != "BQ_TABLE" && name != "K_SERVICE" && name != "PORT" {
			out = append(out, kv)
		}
	}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return append(out, extra...)
}

// scan reads the server's stderr: it keeps the "metadata loaded" lines and
// the last lines, until the process exits.
func (s *server) scan(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		seen := time.Now()
		if s.log != nil {
			fmt.Fprintln(s.log, line)
		}
		s.mu.Lock()
		if strings.Contains(line, `"metadata loaded"`) {
			l := loadLine{seen: seen}
			if json.Unmarshal([]byte(line), &l) == nil {
				s.loads = append(s.loads, l)
			}
		}
		if s.tail = append(s.tail, line); len(s.tail) > 20 {
			s.tail = s.tail[1:]
		}
		s.mu.Unlock()
	}
	s.cmd.Wait()
	close(s.exited)
}

// loadLines returns the "metadata loaded" lines read so far.
func (s *server) loadLines() []loadLine {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]loadLine(nil), s.loads...)
}

// stderrTail returns the last lines the server wrote to stderr.
func (s *server) stderrTail() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.tail, "\n")
}

// waitListening dials the server until it accepts a connection, and
// returns that connection and when it was accepted.
func (s *server) waitListening(limit time.Duration) (net.Conn, time.Time, error) {
	deadline := time.Now().Add(limit)
	for {
		c, err := net.Dial("tcp", s.addr)
		if err == nil {
			return c, time.Now(), nil
		}
		select {
		case <-s.exited:
			return nil, time.Time{}, fmt.Errorf("server exited before listening:\n%s", s.stderrTail())
		default:
		}
		if time.Now().After(deadline) {
			return nil, time.Time{}, fmt.Errorf("server not listening on %s after %v: %w", s.addr, limit, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// stop kills the server and waits for it to exit.
func (s *server) stop() {
	s.cmd.Process.Kill()
	<-s.exited
}

// cpu returns the server's CPU time so far (user and system).
func (s *server) cpu() time.Duration {
	return processCPU(s.cmd.Process.Pid)
}

// peakRSS returns the server's peak resident memory so far, in bytes (0:
// unknown).
func (s *server) peakRSS() int64 {
	return peakRSS(s.cmd.Process.Pid)
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	return port, err
}
