package enrich_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/devicestream/enrichevent/enrich"
)

// Example shows the life of an event: the metadata file is parsed once into
// a table, then each push request is decoded, its payload checked, its
// device looked up and its row built.
func Example() {
	devices, err := enrich.ParseMetadata(strings.NewReader(
		"device_id,asset_tag,location_id,device_location_tenant_name\n"+
			"vr-0001,AT-100231,LOC-NYC-014,Northwind Health\n"),
		enrich.FormatHint{Name: "devices.csv"})
	if err != nil {
		log.Fatal(err)
	}

	data := `{"device_id":"vr-0001","event_time":"2026-11-24T07:59:58Z","event":"session_start"}`
	body := []byte(`{"message":{"data":"` + base64.StdEncoding.EncodeToString([]byte(data)) +
		`","messageId":"1001","publishTime":"2026-11-24T08:00:00Z"},"subscription":"projects/demo/subscriptions/events"}`)

	env, err := enrich.DecodePush(body)
	if err != nil {
		log.Fatal(err)
	}
	ev, err := enrich.Options{}.ParseEvent(env.Message.Data)
	if err != nil {
		log.Fatal(err) // a *PermanentError: record it with NewErrorRecord
	}
	var dev *enrich.Device // nil when unknown: still a row
	if d, ok := devices.Lookup(ev.DeviceID); ok {
		dev = &d
	}
	now := time.Date(2026, 11, 24, 8, 0, 1, 0, time.UTC)
	row := enrich.BuildRow(&env, ev, dev, enrich.MetaInfo{Version: 7, LoadedAt: now.Add(-time.Hour)}, now)

	out, _ := json.MarshalIndent(row, "", "  ")
	fmt.Println(string(out))
	// Output:
	// {
	//   "message_id": "1001",
	//   "subscription": "projects/demo/subscriptions/events",
	//   "publish_time": "2026-11-24T08:00:00Z",
	//   "event_time": "2026-11-24T07:59:58Z",
	//   "device_id": "vr-0001",
	//   "device_found": true,
	//   "asset_tag": "AT-100231",
	//   "location_id": "LOC-NYC-014",
	//   "tenant_name": "Northwind Health",
	//   "device_metadata": {
	//     "device_id": "vr-0001",
	//     "asset_tag": "AT-100231",
	//     "location_id": "LOC-NYC-014",
	//     "device_location_tenant_name": "Northwind Health"
	//   },
	//   "payload": {
	//     "device_id": "vr-0001",
	//     "event_time": "2026-11-24T07:59:58Z",
	//     "event": "session_start"
	//   },
	//   "attributes": {},
	//   "metadata_version": 7,
	//   "metadata_loaded_at": "2026-11-24T07:00:01Z",
	//   "ingest_time": "2026-11-24T08:00:01Z"
	// }
}
