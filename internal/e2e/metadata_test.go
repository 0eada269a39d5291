package e2e

import (
	"bytes"
	"fmt"
	"maps"
)

// fleetSize is the number of devices in every good metadata file.
const fleetSize = 100

// deviceID is the id of device i of the fleet.
func deviceID(i int) string { return fmt.Sprintf("dev-%03d", i) }

// metadata is the content of one metadata file: each device's location.
// Asset tags and tenants follow from the device id.
type metadata map[string]string

// baseMetadata puts device i at LOC-A-(i mod 10).
func baseMetadata() metadata {
	m := make(metadata, fleetSize)
	for i := range fleetSize {
		m[deviceID(i)] = fmt.Sprintf("LOC-A-%02d", i%10)
	}
	return m
}

// moved returns a copy of m in which the first n devices are at a new
// location, LOC-B-i.
func (m metadata) moved(n int) metadata {
	out := maps.Clone(m)
	for i := range n {
		out[deviceID(i)] = fmt.Sprintf("LOC-B-%02d", i)
	}
	return out
}

// csv returns the metadata file: a header, then one device per line, in
// the order of the fleet.
func (m metadata) csv() []byte {
	var b bytes.Buffer
	b.WriteString("device_id,asset_tag,location_id,device_location_tenant_name\n")
	for i := range fleetSize {
		id := deviceID(i)
		fmt.Fprintf(&b, "%s,AT-%06d,%s,\"Tenant %d, Inc.\"\n", id, 100000+i, m[id], i%3)
	}
	return b.Bytes()
}

// truncatedCSV is the first 40% of a good file, cut in the middle of a
// record, as a partial upload leaves it.
func truncatedCSV(m metadata) []byte {
	full := m.csv()
	cut := len(full) * 4 / 10
	for full[cut-1] == '\n' || full[cut-1] == ',' {
		cut++ // never at a record or field boundary
	}
	return bytes.Clone(full[:cut])
}

// corruptCSV is what a botched gzip upload leaves: the gzip magic number,
// then garbage.
func corruptCSV() []byte {
	b := []byte{0x1f, 0x8b, 0x08, 0x00}
	for i := range 512 {
		b = append(b, byte(i*7+3))
	}
	return b
}
