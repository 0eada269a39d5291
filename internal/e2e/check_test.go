package e2e

import (
	"bytes"
	"fmt"
)

// check verifies every row and error record of the scenario against what
// was published: each belongs to a published message, a good message is
// a row enriched with exactly the metadata version it names, a poison
// message is a record with its reason and raw bytes.
func (s *scenario) check() {
	s.t.Helper()
	var problems []string
	for i, r := range s.h.bq.Rows(s.h.project, s.dataset, rowsTable) {
		if p := s.checkRow(r); p != "" {
			problems = append(problems, fmt.Sprintf("row %d: %s", i, p))
		}
	}
	for i, r := range s.h.bq.Rows(s.h.project, s.dataset, errorsTable) {
		if p := s.checkRecord(r); p != "" {
			problems = append(problems, fmt.Sprintf("error record %d: %s", i, p))
		}
	}
	if len(problems) > 0 {
		if len(problems) > 20 {
			problems = append(problems[:20], fmt.Sprintf("... and %d more", len(problems)-20))
		}
		s.t.Errorf("%d rows or records are wrong:\n%s", len(problems), join(problems))
	}
}

func (s *scenario) checkRow(r map[string]any) string {
	id, _ := r["message_id"].(string)
	m := s.sent.get(id)
	switch {
	case m == nil:
		return fmt.Sprintf("message_id %q was never published", id)
	case m.wantReason != "":
		return fmt.Sprintf("message %s should be an error record (%s), got a row", id, m.wantReason)
	}
	payload, _ := r["payload"].(string)
	if payload != string(m.data) {
		return fmt.Sprintf("message %s: payload = %.80q, want %.80q", id, payload, m.data)
	}
	if dev, _ := r["device_id"].(string); dev != m.device {
		return fmt.Sprintf("message %s: device_id = %q, want %q", id, dev, m.device)
	}
	if found, _ := r["device_found"].(bool); !found {
		return fmt.Sprintf("message %s: device_found = false for %s", id, m.device)
	}
	version, _ := r["metadata_version"].(int64)
	meta, ok := s.expect[version]
	if !ok {
		return fmt.Sprintf("message %s: metadata_version = %d, which is not a good version uploaded (%v)", id, version, keys(s.expect))
	}
	if loc, _ := r["location_id"].(string); loc != meta[m.device] {
		return fmt.Sprintf("message %s: location_id = %q, want %q (device %s, metadata_version %d)", id, loc, meta[m.device], m.device, version)
	}
	return ""
}

func (s *scenario) checkRecord(r map[string]any) string {
	id, _ := r["message_id"].(string)
	m := s.sent.get(id)
	switch {
	case m == nil:
		return fmt.Sprintf("message_id %q was never published", id)
	case m.wantReason == "":
		return fmt.Sprintf("message %s should be a row, got an error record: %v %v", id, r["reason"], r["errorMessage"])
	}
	if reason, _ := r["reason"].(string); reason != m.wantReason {
		return fmt.Sprintf("message %s: reason = %q, want %q (%v)", id, reason, m.wantReason, r["errorMessage"])
	}
	if payload, _ := r["payloadBytes"].([]byte); !bytes.Equal(payload, m.data) {
		return fmt.Sprintf("message %s: payloadBytes is %d bytes, want the %d published", id, len(payload), len(m.data))
	}
	return ""
}

// rowsByVersion counts the rows of the messages in ids by metadata_version.
func (s *scenario) rowsByVersion(ids []string) map[int64]int {
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	out := make(map[int64]int)
	for _, r := range s.h.bq.Rows(s.h.project, s.dataset, rowsTable) {
		if id, _ := r["message_id"].(string); want[id] {
			v, _ := r["metadata_version"].(int64)
			out[v]++
		}
	}
	return out
}

func keys[V any](m map[int64]V) []int64 {
	out := make([]int64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func join(lines []string) string {
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString("  ")
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}
