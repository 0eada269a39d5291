package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is a child process in a process group of its own, so that
// killing the group also kills whatever it started (gcloud's java child).
// Its stdout and stderr are captured.
type process struct {
	name   string
	cmd    *exec.Cmd
	stdout *logBuffer
	stderr *logBuffer
	done   chan struct{} // closed once the process has exited and been reaped
	err    error         // Wait's result; read only after done
}

// startProcess starts cmd in its own process group.
func startProcess(name string, cmd *exec.Cmd) (*process, error) {
	p := &process{name: name, cmd: cmd, stdout: &logBuffer{}, stderr: &logBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// kill sends SIGKILL to the whole process group and waits until the
// process is reaped. It is idempotent.
func (p *process) kill() {
	select {
	case <-p.done:
	default:
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// exited reports whether the process has exited, and its Wait error.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// waitListening waits until addr accepts TCP connections, the process
// exits, or timeout passes.
func (p *process) waitListening(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if done, err := p.exited(); done {
			return fmt.Errorf("%s exited before listening on %s: %v\nstderr:\n%s", p.name, addr, err, p.stderr)
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening on %s after %v: %v\nstderr:\n%s", p.name, addr, timeout, err, p.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logBuffer is an io.Writer that keeps everything written, safe for
// concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logLine is one JSON log line of the function, in Cloud Logging's shape.
type logLine struct {
	Severity string `json:"severity"`
	Message  string `json:"message"`
	raw      string
	attrs    map[string]any
}

// attr returns attribute key of the line as text ("" when absent).
func (l logLine) attr(key string) string {
	v, ok := l.attrs[key]
	if !ok || v == nil {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

// jsonLines returns the lines of the buffer that are JSON log lines.
func (b *logBuffer) jsonLines() []logLine {
	var out []logLine
	for line := range strings.Lines(b.String()) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var l logLine
		d := json.NewDecoder(strings.NewReader(line))
		d.UseNumber() // generations are int64s: no float64 rounding
		if json.Unmarshal([]byte(line), &l) != nil || d.Decode(&l.attrs) != nil {
			continue
		}
		l.raw = line
		out = append(out, l)
	}
	return out
}

// count returns how many JSON log lines have the message msg (and, unless
// severity is "", that severity).
func (b *logBuffer) count(msg, severity string) int {
	n := 0
	for _, l := range b.jsonLines() {
		if l.Message == msg && (severity == "" || l.Severity == severity) {
			n++
		}
	}
	return n
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
