package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// metadataCSV returns a metadata file of n devices shaped like the
// original CSV, and the device ids. variant changes every location id but
// not the file's size, so that each variant is a real new version.
func metadataCSV(n, variant int) ([]byte, []string) {
	tenants := []string{"Northwind Health", "Contoso Clinics", "Fabrikam, Inc.", "Tailspin Rehab", "Woodgrove Senior Living"}
	cities := []string{"NYC", "BOS", "CHI", "SEA", "ATL", "DEN", "AUS", "LAX"}
	var b bytes.Buffer
	b.Grow(n * 64)
	b.WriteString("device_id,asset_tag,location_id,device_location_tenant_name\n")
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("vr-%07d", i+1)
		tenant := tenants[i/101%len(tenants)]
		if tenant == "Fabrikam, Inc." {
			tenant = `"` + tenant + `"`
		}
		fmt.Fprintf(&b, "%s,AT-%06d,LOC-%s-%03d,%s\n", ids[i], 100000+i*7%900000,
			cities[(i+variant)%len(cities)], (i/37+variant)%1000, tenant)
	}
	return b.Bytes(), ids
}

// devicesForBytes returns how many devices make a metadata file of about
// size bytes.
func devicesForBytes(size int) int {
	sample, _ := metadataCSV(1000, 0)
	return max(1, size*1000/len(sample))
}

// writeAtomic replaces path with data: written beside it, then renamed,
// so that a reader sees the old file or the new one, never half of one.
func writeAtomic(path string, data []byte) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// rewriter replaces the metadata file every interval, alternating between
// two versions of the same devices, until stop is called.
type rewriter struct {
	path     string
	versions [2][]byte
	interval time.Duration
	count    atomic.Int64
	errs     atomic.Int64
	stopc    chan struct{}
	done     chan struct{}
}

func startRewriter(path string, n int, interval time.Duration) *rewriter {
	r := &rewriter{path: path, interval: interval, stopc: make(chan struct{}), done: make(chan struct{})}
	r.versions[0], _ = metadataCSV(n, 1)
	r.versions[1], _ = metadataCSV(n, 2)
	go r.run()
	return r
}

func (r *rewriter) run() {
	defer close(r.done)
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-r.stopc:
			return
		case <-t.C:
			if err := writeAtomic(r.path, r.versions[i%2]); err != nil {
				r.errs.Add(1)
				continue
			}
			r.count.Add(1)
		}
	}
}

func (r *rewriter) stop() {
	close(r.stopc)
	<-r.done
}
