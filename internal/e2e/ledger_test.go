package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"
)

// message is one published message.
type message struct {
	id     string // Pub/Sub message id
	data   []byte
	device string // "" for poison messages
	// wantReason is the error record's reason for a poison message, "" for
	// a message that must become a row.
	wantReason string
}

// ledger is every message a scenario published, by message id. It is safe
// for concurrent use.
type ledger struct {
	mu   sync.Mutex
	byID map[string]*message
	seq  int
}

func newLedger() *ledger { return &ledger{byID: make(map[string]*message)} }

func (l *ledger) add(m *message) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, dup := l.byID[m.id]; dup {
		return fmt.Errorf("message id %s published twice", m.id)
	}
	l.byID[m.id] = m
	return nil
}

func (l *ledger) get(id string) *message {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byID[id]
}

func (l *ledger) ids() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	ids := make([]string, 0, len(l.byID))
	for id := range l.byID {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (l *ledger) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.byID)
}

// next returns a sequence number unique in the scenario, to make every
// payload distinct.
func (l *ledger) next() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	return l.seq
}

// event returns a distinct event payload of device dev.
func (s *scenario) event(dev string) []byte {
	b, _ := json.Marshal(map[string]any{
		"device_id":  dev,
		"event_time": time.Now().UTC().Format(time.RFC3339Nano),
		"event":      "heartbeat",
		"scenario":   s.name,
		"seq":        s.sent.next(),
	})
	return b
}

// publishEvents publishes n events, spread over the fleet round-robin, and
// returns their message ids.
func (s *scenario) publishEvents(n int) []string {
	msgs := make([]*message, n)
	for i := range msgs {
		dev := deviceID(i % fleetSize)
		msgs[i] = &message{data: s.event(dev), device: dev}
	}
	return s.publish(msgs)
}

// publish publishes msgs (their ids are filled in) and returns the ids.
func (s *scenario) publish(msgs []*message) []string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	results := make([]*pubsub.PublishResult, len(msgs))
	for i, m := range msgs {
		results[i] = s.sub.publisher.Publish(ctx, &pubsub.Message{Data: m.data, Attributes: map[string]string{"scenario": s.name}})
	}
	ids := make([]string, len(msgs))
	for i, r := range results {
		id, err := r.Get(ctx)
		if err != nil {
			s.t.Fatalf("publish message %d of %d: %v", i+1, len(msgs), err)
		}
		msgs[i].id, ids[i] = id, id
		if err := s.sent.add(msgs[i]); err != nil {
			s.t.Fatal(err)
		}
	}
	return ids
}

// tally is where the published messages are.
type tally struct {
	published    int
	rows         int // rows in the rows table
	errorRecords int // records in the error-records table
	duplicates   int // rows and records beyond the first of each message id
	lost         int // published messages found in neither table
	lostIDs      []string
	unknown      []string // message ids in the tables that were never published
	// found counts the rows and records of each message id.
	found map[string]int
}

// accounted reports whether every message in ids is a row or a record.
func (tl tally) accounted(ids []string) bool {
	for _, id := range ids {
		if tl.found[id] == 0 {
			return false
		}
	}
	return true
}

// count reads both tables and accounts for every published message.
func (s *scenario) count() tally {
	rows := s.h.bq.Rows(s.h.project, s.dataset, rowsTable)
	recs := s.h.bq.Rows(s.h.project, s.dataset, errorsTable)
	tl := tally{published: s.sent.len(), rows: len(rows), errorRecords: len(recs), found: make(map[string]int)}
	for _, table := range [][]map[string]any{rows, recs} {
		for _, r := range table {
			id, _ := r["message_id"].(string)
			tl.found[id]++
			if s.sent.get(id) == nil {
				tl.unknown = append(tl.unknown, id)
			}
		}
	}
	for _, id := range s.sent.ids() {
		switch n := tl.found[id]; {
		case n == 0:
			tl.lost++
			if len(tl.lostIDs) < 10 {
				tl.lostIDs = append(tl.lostIDs, id)
			}
		case n > 1:
			tl.duplicates += n - 1
		}
	}
	return tl
}

// await waits, at most settleTimeout, until every message in ids (every
// message published so far if ids is nil) is a row or an error record,
// then checks every row and record. It fails the test on timeout.
func (s *scenario) await(ids []string) tally {
	s.t.Helper()
	if ids == nil {
		ids = s.sent.ids()
	}
	deadline := time.Now().Add(settleTimeout)
	for {
		tl := s.count()
		if tl.accounted(ids) {
			s.check()
			return tl
		}
		if time.Now().After(deadline) {
			missing := 0
			for _, id := range ids {
				if tl.found[id] == 0 {
					missing++
				}
			}
			s.t.Fatalf("after %v, %d of %d awaited messages are neither rows nor error records (rows=%d error_records=%d)",
				settleTimeout, missing, len(ids), tl.rows, tl.errorRecords)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
