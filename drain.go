package enrichevent

import (
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

// Stopping on Cloud Run. Cloud Run sends an instance SIGTERM, and SIGKILL
// 10 s later. The functions framework's server does not catch SIGTERM, so
// by default the process dies at once and the requests in flight get no
// answer: Pub/Sub redelivers them, and a row that was already appended
// comes back as a duplicate. On Cloud Run (K_SERVICE set), SIGTERM instead
// stops the process once no request is in flight, or after drainTimeout.

// inFlight counts the requests being handled, only where SIGTERM drains
// them: on a machine with several CPUs a shared counter costs every
// request a contended cache line.
var inFlight atomic.Int64

// drainTimeout bounds the wait for the requests in flight: short of
// Cloud Run's 10 s, so that the process exits on its own.
const drainTimeout = 9 * time.Second

// drainOnSIGTERM makes SIGTERM stop the process once no request is in
// flight, or after drainTimeout, and logs how it went.
func drainOnSIGTERM(log *slog.Logger) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	go func() {
		<-sig
		start := time.Now()
		for inFlight.Load() > 0 && time.Since(start) < drainTimeout {
			time.Sleep(10 * time.Millisecond)
		}
		flushThinned(log)
		log.Info("stopping on SIGTERM", "waited_ms", time.Since(start).Milliseconds(), "in_flight", inFlight.Load())
		os.Exit(0)
	}()
}
