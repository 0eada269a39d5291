package cache_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"testing/fstest"

	"github.com/devicestream/enrichevent/cache"
)

// parseDevices reads "device_id,location" rows into a map keyed by device id.
func parseDevices(r io.Reader, _ cache.Version) (map[string]string, error) {
	rows, err := csv.NewReader(r).ReadAll()
	if err != nil {
		return nil, err
	}
	devices := make(map[string]string, len(rows))
	for _, row := range rows[1:] { // skip the header
		devices[row[0]] = row[1]
	}
	return devices, nil
}

func Example() {
	fsys := fstest.MapFS{"devices.csv": {Data: []byte("device_id,location\nd1,paris\nd2,oslo\n")}}
	devices := cache.New(cache.Config[map[string]string]{
		Source: cache.NewFileSource(fsys, "devices.csv"),
		Parse:  parseDevices,
		Size:   func(m map[string]string) int { return len(m) },
		Logger: slog.New(slog.DiscardHandler),
	})

	// In a request handler: one snapshot per request, so every lookup in
	// it sees the same version.
	snap, err := devices.Get(context.Background())
	if err != nil {
		fmt.Println("no device metadata:", err) // answer 5xx: Pub/Sub retries
		return
	}
	for _, id := range []string{"d2", "d3"} {
		location, ok := snap.Value[id]
		if !ok {
			devices.Miss() // maybe a newer file knows it: check early
		}
		fmt.Printf("%s: %q found=%v (generation %d)\n", id, location, ok, snap.Version.Generation)
	}

	st := devices.Stats()
	fmt.Printf("loads=%d downloads=%d entries=%d\n", st.Loads, st.Downloads, st.Size)
	// Output:
	// d2: "oslo" found=true (generation 1)
	// d3: "" found=false (generation 1)
	// loads=1 downloads=1 entries=2
}
