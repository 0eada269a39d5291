package enrich

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"
)

// benchEvent is a typical event: about 300 bytes of JSON (334).
const benchEvent = `{"device_id":"vr-0017","event_time":"2026-11-24T07:59:58.123Z","event":"session_start",` +
	`"session_id":"6f1c2a9e-3b7d-4e21-9a54-0c8e7f3d2b19","app":{"name":"physio-balance","version":"4.12.3"},` +
	`"battery":87,"temperature_c":36.4,"firmware":"2.8.1-rc3","controllers":["left","right"],` +
	`"ipd_mm":63.5,"user":"patient-40913","clinic_mode":true}`

// benchBody is the push envelope Pub/Sub posts for benchEvent.
var benchBody = []byte(`{"message":{"data":"` + b64(benchEvent) + `","attributes":{"origin":"headset",` +
	`"schema":"v3"},"messageId":"13815214470394937","publishTime":"2026-11-24T08:00:00.123Z"},` +
	`"subscription":"projects/demo/subscriptions/device-events-push","deliveryAttempt":1}`)

func b64(s string) string {
	env := envelope(s)
	start := bytes.Index(env, []byte(`"data":"`)) + len(`"data":"`)
	end := start + bytes.IndexByte(env[start:], '"')
	return string(env[start:end])
}

// BenchmarkUnmarshalEnvelope is the hot path's baseline: encoding/json
// decoding the push envelope alone.
func BenchmarkUnmarshalEnvelope(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		var env PushEnvelope
		if err := json.Unmarshal(benchBody, &env); err != nil {
			b.Fatal(err)
		}
	}
}

var sinkRow Row

// BenchmarkHotPath is the per-event work: decode, parse the event, join,
// build the row.
func BenchmarkHotPath(b *testing.B) {
	devices, err := ParseMetadata(openTestdata(b, "devices.csv"), FormatHint{})
	if err != nil {
		b.Fatal(err)
	}
	var opts Options
	meta := MetaInfo{Version: 1, LoadedAt: time.Now()}
	now := time.Now()
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		env, err := DecodePush(benchBody)
		if err != nil {
			b.Fatal(err)
		}
		ev, err := opts.ParseEvent(env.Message.Data)
		if err != nil {
			b.Fatal(err)
		}
		var dev *Device
		if d, ok := devices.Lookup(ev.DeviceID); ok {
			dev = &d
		}
		sinkRow = BuildRow(&env, ev, dev, meta, now)
	}
	if !sinkRow.DeviceFound {
		b.Fatal("device not found")
	}
}

func BenchmarkParseEvent(b *testing.B) {
	var opts Options
	data := []byte(benchEvent)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := opts.ParseEvent(data); err != nil {
			b.Fatal(err)
		}
	}
}

// loop runs body in b.Loop and reports the process CPU time per
// operation, GC included: on a shared machine CPU time is steadier than
// wall time, which other processes stretch.
func loop(b *testing.B, body func()) {
	start := processCPU()
	n := 0
	for b.Loop() {
		body()
		n++
	}
	if cpu := processCPU() - start; cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/op")
	}
}

var benchSizes = []struct {
	name string
	n    int
}{{"10k", 10_000}, {"1M", 1_000_000}}

var (
	filesMu sync.Mutex
	files   = map[string][]byte{}
)

// metadataFile returns a generated metadata file of n devices, shaped like
// the original CSV, in format f; the same devices in every format.
func metadataFile(f Format, n int) []byte {
	filesMu.Lock()
	defer filesMu.Unlock()
	key := fmt.Sprint(f, n)
	if data, ok := files[key]; ok {
		return data
	}
	tenants := []string{"Northwind Health", "Contoso Clinics", "Fabrikam, Inc.", "Tailspin Rehab", "Woodgrove Senior Living"}
	cities := []string{"NYC", "BOS", "CHI", "SEA", "ATL", "DEN", "AUS", "LAX"}
	var buf bytes.Buffer
	switch f {
	case FormatCSV:
		buf.WriteString("device_id,asset_tag,location_id,device_location_tenant_name\n")
	case FormatJSON:
		buf.WriteString("{\n")
	}
	for i := range n {
		id := fmt.Sprintf("vr-%07d", i+1)
		asset := fmt.Sprintf("AT-%06d", 100000+i*7%900000)
		loc := fmt.Sprintf("LOC-%s-%03d", cities[i%len(cities)], i/37%1000)
		tenant := tenants[i/101%len(tenants)]
		switch f {
		case FormatCSV:
			if strings.Contains(tenant, ",") {
				tenant = `"` + tenant + `"`
			}
			fmt.Fprintf(&buf, "%s,%s,%s,%s\n", id, asset, loc, tenant)
		case FormatJSON:
			sep := ","
			if i == n-1 {
				sep = ""
			}
			fmt.Fprintf(&buf, "  %q: {\"asset_tag\": %q, \"location_id\": %q, \"device_location_tenant_name\": %q}%s\n", id, asset, loc, tenant, sep)
		case FormatNDJSON:
			fmt.Fprintf(&buf, "{\"device_id\":%q,\"asset_tag\":%q,\"location_id\":%q,\"device_location_tenant_name\":%q}\n", id, asset, loc, tenant)
		}
	}
	if f == FormatJSON {
		buf.WriteString("}\n")
	}
	files[key] = buf.Bytes()
	return buf.Bytes()
}

// BenchmarkParseMetadata loads generated metadata files. Besides time and
// allocations it reports the table's size and the heap a refresh needs:
// see reportSwap.
func BenchmarkParseMetadata(b *testing.B) {
	for _, f := range []Format{FormatCSV, FormatJSON, FormatNDJSON} {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%s/%s", f, size.name), func(b *testing.B) {
				data := metadataFile(f, size.n)
				hint := FormatHint{Name: "devices." + string(f)}
				load := func() *Devices {
					d, err := ParseMetadata(bytes.NewReader(data), hint)
					if err != nil {
						b.Fatal(err)
					}
					if d.Len() != size.n {
						b.Fatalf("Len() = %d, want %d", d.Len(), size.n)
					}
					return d
				}
				b.ReportAllocs()
				b.SetBytes(int64(len(data)))
				loop(b, func() { load() })
				reportSwap(b, size.n, load)
			})
		}
	}
}

// reportSwap measures a refresh after the timed loads: a table is loaded
// and kept, as the current one, and then the next one is loaded. It reports
//   - steady-B/device: the table's retained heap per device;
//   - swap-peak/steady: the peak heap (live and not yet collected objects,
//     sampled every 100µs) during the second load, above the heap before
//     the first, as a multiple of the table;
//   - swap-bound/steady: a bound on that peak: the old table plus every
//     byte allocated while loading the new one, as if the GC reclaimed
//     nothing meanwhile.
func reportSwap(b *testing.B, n int, load func() *Devices) {
	runtime.GC()
	base := heapObjects()
	old := load()
	runtime.GC()
	table := heapObjects() - base
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	allocated := ms.TotalAlloc
	done := make(chan struct{})
	peak := make(chan uint64)
	go func() {
		high := heapObjects()
		for {
			select {
			case <-done:
				peak <- max(high, heapObjects())
				return
			case <-time.After(100 * time.Microsecond):
				high = max(high, heapObjects())
			}
		}
	}()
	next := load()
	close(done)
	high := <-peak
	runtime.ReadMemStats(&ms)
	allocated = ms.TotalAlloc - allocated
	runtime.KeepAlive(old)
	runtime.KeepAlive(next)
	b.ReportMetric(float64(table)/float64(n), "steady-B/device")
	b.ReportMetric(float64(high-base)/float64(table), "swap-peak/steady")
	b.ReportMetric(1+float64(allocated)/float64(table), "swap-bound/steady")
}

// heapObjects returns the bytes of heap objects, live or not yet
// collected.
func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// readAll reads data through a 64 KiB buffer, as a download would: the
// "reading the raw bytes" part of the baselines. (io.Copy from a
// bytes.Reader to io.Discard would copy nothing.)
func readAll(b *testing.B, data []byte, buf []byte) {
	r := bytes.NewReader(data)
	for {
		_, err := r.Read(buf)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadCSVBaseline is the metadata load's baseline: reading the
// raw bytes plus one encoding/csv pass over them.
func BenchmarkReadCSVBaseline(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			data := metadataFile(FormatCSV, size.n)
			buf := make([]byte, 64<<10)
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			loop(b, func() {
				readAll(b, data, buf)
				r := csv.NewReader(bytes.NewReader(data))
				r.ReuseRecord = true
				rows := 0
				for {
					_, err := r.Read()
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					rows++
				}
				if rows != size.n+1 {
					b.Fatalf("read %d records, want %d", rows, size.n+1)
				}
			})
		})
	}
}

// BenchmarkValidJSONBaseline is a baseline for the JSON loads: reading the
// raw bytes of the keyed JSON file plus json.Valid, encoding/json's
// cheapest pass over them.
func BenchmarkValidJSONBaseline(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			data := metadataFile(FormatJSON, size.n)
			buf := make([]byte, 64<<10)
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			loop(b, func() {
				readAll(b, data, buf)
				if !json.Valid(data) {
					b.Fatal("invalid JSON")
				}
			})
		})
	}
}

func BenchmarkLookup(b *testing.B) {
	d, err := ParseMetadata(bytes.NewReader(metadataFile(FormatCSV, 1_000_000)), FormatHint{})
	if err != nil {
		b.Fatal(err)
	}
	ids := []string{"vr-0000001", "vr-0500000", "vr-0999999", "vr-1000001"}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d.Lookup(ids[i&3])
		i++
	}
}

// BenchmarkGCWithTable times a full garbage collection with a table of
// CSV devices alive, which is what the table adds to every GC cycle (and,
// twice over, to the cycles of a refresh). Besides wall and CPU time per
// collection it reports gc-scan-B/device: the heap bytes the collector
// scanned for pointers in the last cycle, above those it scanned without
// the table, per device.
func BenchmarkGCWithTable(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			data := metadataFile(FormatCSV, size.n)
			runtime.GC()
			base := gcScanned()
			d, err := ParseMetadata(bytes.NewReader(data), FormatHint{})
			if err != nil {
				b.Fatal(err)
			}
			runtime.GC()
			scanned := gcScanned()
			loop(b, runtime.GC)
			runtime.KeepAlive(d)
			b.ReportMetric((float64(scanned)-float64(base))/float64(size.n), "gc-scan-B/device")
		})
	}
}

// gcScanned returns the heap bytes the last GC cycle scanned for pointers.
func gcScanned() uint64 {
	s := []metrics.Sample{{Name: "/gc/scan/heap:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// BenchmarkDecodePush compares DecodePush, which takes its fast path on
// the typical envelope, with decodePushJSON, its encoding/json reference.
func BenchmarkDecodePush(b *testing.B) {
	for _, bb := range []struct {
		name   string
		decode func([]byte) (PushEnvelope, error)
	}{{"fast", DecodePush}, {"json", decodePushJSON}} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(benchBody)))
			for b.Loop() {
				if _, err := bb.decode(benchBody); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
