package e2e

import (
	"testing"
	"time"
)

// happyPath: 1,000 events across the 100 devices of the metadata file all
// land enriched, with one download of the file.
func happyPath(h *harness, t *testing.T, name string) {
	s := h.newScenario(t, name)
	g := s.upload(baseMetadata())
	f := h.startFunction(s, 0)
	s.subscribe(f.port)
	ids := s.publishEvents(1000)
	tl := s.await(ids)
	if tl.errorRecords != 0 {
		t.Errorf("error_records = %d, want 0", tl.errorRecords)
	}
	s.wantOnlyVersion(ids, g, "rows")
	if n := h.gcs.downloadsOf(s.object); n != 1 {
		t.Errorf("metadata downloads = %d, want 1 (later refreshes only check the version)", n)
	}
}

// gcsDownAtColdStart: a fresh instance cannot load its metadata; it
// answers 5xx, Pub/Sub redelivers, and once GCS is back every event lands.
func gcsDownAtColdStart(h *harness, t *testing.T, name string) {
	s := h.newScenario(t, name)
	g := s.upload(baseMetadata())
	h.gcs.down.Store(true)
	t.Cleanup(func() { h.gcs.down.Store(false) })
	refused := h.gcs.refused.Load()
	f := h.startFunction(s, 0)
	s.subscribe(f.port)
	ids := s.publishEvents(100)
	s.waitFor(30*time.Second, "the function to answer 5xx while GCS is down", func() bool {
		return s.logCount(logRedeliver, "ERROR") >= 10
	})
	if tl := s.count(); tl.rows+tl.errorRecords != 0 {
		t.Errorf("with no metadata loaded: rows=%d error_records=%d, want none", tl.rows, tl.errorRecords)
	}
	h.gcs.down.Store(false)
	s.await(ids)
	s.wantOnlyVersion(ids, g, "rows")
	t.Logf("while GCS was down: %d answers 5xx, %d GCS requests refused",
		s.logCount(logRedeliver, "ERROR"), h.gcs.refused.Load()-refused)
}

// gcsDownDuringRefresh: once warm, an instance whose refresh fails keeps
// serving the last good metadata; no invocation fails.
func gcsDownDuringRefresh(h *harness, t *testing.T, name string) {
	s := h.newScenario(t, name)
	g := s.upload(baseMetadata())
	f := h.startFunction(s, 0)
	s.subscribe(f.port)
	warm := s.publishEvents(100)
	s.await(warm)
	h.gcs.down.Store(true)
	t.Cleanup(func() { h.gcs.down.Store(false) })
	refused := h.gcs.refused.Load()
	// Past the TTL, an event makes the function try to refresh.
	during := s.publishUntil(30*time.Second, "a metadata refresh to hit the GCS outage", func() bool {
		return h.gcs.refused.Load() > refused
	})
	during = append(during, s.publishEvents(200)...)
	s.await(during)
	h.gcs.down.Store(false)
	s.await(nil)
	if n := s.logCount(logRedeliver, ""); n != 0 {
		t.Errorf("%d invocations answered 5xx during the GCS outage, want 0", n)
	}
	s.wantOnlyVersion(append(warm, during...), g, "rows")
	t.Logf("during the outage: %d events, %d GCS requests refused, %d answers 5xx",
		len(during), h.gcs.refused.Load()-refused, s.logCount(logRedeliver, ""))
}

// metadataUpdated: after the TTL the function picks up a new version of
// the file; rows before carry the old location and version, rows after the
// new ones.
func metadataUpdated(h *harness, t *testing.T, name string) {
	s := h.newScenario(t, name)
	oldMeta := baseMetadata()
	g1 := s.upload(oldMeta)
	f := h.startFunction(s, 0)
	s.subscribe(f.port)
	before := s.publishEvents(200)
	s.await(before)
	s.wantOnlyVersion(before, g1, "events before the update")

	newMeta := oldMeta.moved(10)
	g2 := s.upload(newMeta)
	probes := s.publishUntil(30*time.Second, "a row enriched with the new version", func() bool {
		return s.rowsByVersion(s.sent.ids())[g2] > 0
	})
	after := s.publishEvents(200)
	s.await(after)
	s.wantOnlyVersion(after, g2, "events after the update")
	// check() has verified each row's location against the version it
	// names; make sure the moved devices are among them.
	moved := 0
	for _, r := range h.bq.Rows(h.project, s.dataset, rowsTable) {
		if v, _ := r["metadata_version"].(int64); v == g2 && r["location_id"] != oldMeta[r["device_id"].(string)] {
			moved++
		}
	}
	if moved == 0 {
		t.Errorf("no row carries a new location of the %d moved devices", 10)
	}
	if n := h.gcs.downloadsOf(s.object); n != 2 {
		t.Errorf("metadata downloads = %d, want 2 (one per version)", n)
	}
	t.Logf("generation %d -> %d: %d events before, %d probes, %d events after; %d rows with a new location",
		g1, g2, len(before), len(probes), len(after), moved)
}

// metadataRejected: a truncated, a corrupt and an empty file each replace
// the metadata in turn; each is rejected with an ERROR, and events keep
// the last good version.
func metadataRejected(h *harness, t *testing.T, name string) {
	s := h.newScenario(t, name)
	good := baseMetadata()
	g := s.upload(good)
	f := h.startFunction(s, 0)
	s.subscribe(f.port)
	warm := s.publishEvents(100)
	s.await(warm)
	for _, bad := range []struct {
		name string
		data []byte
	}{
		{"truncated", truncatedCSV(good)},
		{"corrupt", corruptCSV()},
		{"empty", nil},
	} {
		badGen := s.uploadRaw(bad.data)
		s.publishUntil(30*time.Second, "the function to reject the "+bad.name+" file (a log line naming generation "+gen(badGen)+")", func() bool {
			return len(s.linesMentioning(gen(badGen))) > 0
		})
		ids := s.publishEvents(50)
		s.await(ids)
		s.wantOnlyVersion(ids, g, "events after the "+bad.name+" file")
		var severities []string
		errorLogged := false
		for _, l := range s.linesMentioning(gen(badGen)) {
			severities = append(severities, l.Severity+": "+l.Message)
			errorLogged = errorLogged || l.Severity == "ERROR"
		}
		if !errorLogged {
			t.Errorf("%s file (generation %d): no ERROR logged; lines naming it: %q", bad.name, badGen, severities)
		}
		for _, l := range s.logLines() {
			if l.Message == "metadata loaded" && l.attr("generation") == gen(badGen) {
				t.Errorf("%s file (generation %d) was loaded: %s", bad.name, badGen, l.raw)
			}
		}
	}
	s.await(nil)
	s.wantOnlyVersion(s.sent.ids(), g, "all rows")
}
