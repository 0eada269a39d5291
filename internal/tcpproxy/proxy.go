// Package tcpproxy is a TCP proxy for tests, on 127.0.0.1, that can turn
// its connections into black holes: still open, reading what the client
// sends, answering nothing. That is what a dead NAT mapping or a hung
// server looks like to a client, which only a timeout of its own, or a
// keepalive, can tell from a slow answer.
package tcpproxy

import (
	"net"
	"sync"
)

// Proxy forwards each connection it accepts to its target.
type Proxy struct {
	ln     net.Listener
	target string

	mu       sync.Mutex
	conns    map[*pair]struct{}
	accepted int
	done     bool
	wg       sync.WaitGroup
}

// pair is one proxied connection: the client's and the target's side.
type pair struct {
	client, target net.Conn
	mu             sync.Mutex
	dark           bool // forwards nothing more, in either direction
}

// Start listens on 127.0.0.1 and forwards connections to target
// (host:port).
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: make(map[*pair]struct{})}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Accepted is the number of connections the proxy has taken.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		t, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		pr := &pair{client: c, target: t}
		p.mu.Lock()
		if p.done {
			p.mu.Unlock()
			c.Close()
			t.Close()
			return
		}
		p.accepted++
		p.conns[pr] = struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		go p.copy(pr, t, c)
		go p.copy(pr, c, t)
	}
}

// copy forwards src to dst until either side ends, discarding what src
// sends once pr is dark, then closes both sides.
func (p *Proxy) copy(pr *pair, dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		pr.mu.Lock()
		dark := pr.dark
		pr.mu.Unlock()
		if n > 0 && !dark {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	pr.client.Close()
	pr.target.Close()
	p.mu.Lock()
	delete(p.conns, pr)
	p.mu.Unlock()
}

// Blackhole makes every connection open now forward nothing more, in
// either direction, while staying open; new connections are forwarded.
func (p *Proxy) Blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pr := range p.conns {
		pr.mu.Lock()
		pr.dark = true
		pr.mu.Unlock()
	}
}

// Close stops the proxy and closes its connections.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.done = true
	for pr := range p.conns {
		pr.client.Close()
		pr.target.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}
