package enrich

import (
	"encoding/json"
	"hash/maphash"
	"unsafe"
)

// Device is one device's metadata, as Devices.Lookup returns it. Its
// strings and Metadata share one immutable block of memory with the other
// devices of the same table: Metadata must not be modified.
type Device struct {
	ID         string
	AssetTag   string
	LocationID string
	TenantName string
	// Metadata is all the device's columns as a compact JSON object, built
	// at parse time: for CSV, every column keyed by its header name (the id
	// column included); for JSON and NDJSON, the device's object, with
	// "device_id" added first when the id is the key of an object keyed by
	// id.
	Metadata json.RawMessage
}

// Format is a metadata file format.
type Format string

// Metadata file formats.
const (
	FormatCSV    Format = "csv"
	FormatJSON   Format = "json"
	FormatNDJSON Format = "ndjson"
)

// ParseStats describes the file a Devices table was parsed from.
type ParseStats struct {
	Format Format
	// Rows counts the file's device records (CSV data rows, JSON members
	// or elements, NDJSON values): Rows = Len + Blank + Duplicates.
	Rows int
	// Blank counts records skipped because their id was empty or blank.
	Blank int
	// Duplicates counts records whose id an earlier record also had; the
	// last one wins.
	Duplicates int
}

// Devices is an immutable table of devices, safe for concurrent reads.
// Its zero value is an empty table.
//
// The table holds no pointer per device, so that the garbage collector,
// which marks every live table in each of its cycles (two tables during a
// refresh), has almost nothing in it to scan: a device is a rec, offsets
// into arena blocks of metadata JSON, and Lookup makes its Device from
// them. BenchmarkGCWithTable measures what a table adds to a collection.
type Devices struct {
	recs   [][]rec        // every stored device, duplicates included, in file order, in chunks of chunkLen
	blocks [][]byte       // the arena: never written again once the table is built
	texts  map[int]string // fields not in the arena (rare), keyed by device number*numFields + field
	index  []uint64       // open addressing, linear probing: see buildIndex
	shift  uint           // 64 - log2(len(index)): a hash's top bits are its home slot
	seed   maphash.Seed
	stats  ParseStats
	bytes  int64 // see Bytes
}

// chunkLen is the number of devices per chunk: devices are stored in
// fixed-size chunks so that loading never copies the table to grow it.
const (
	chunkShift = 10
	chunkLen   = 1 << chunkShift
)

// rec returns the rec of stored device number num.
func (d *Devices) rec(num uint32) *rec {
	return &d.recs[num>>chunkShift][num&(chunkLen-1)]
}

// field returns field f of stored device number num. The strings made of
// the arena are immutable because the arena is.
func (d *Devices) field(num uint32, f int) string {
	r := d.rec(num)
	return d.text(d.blocks[r.block][r.start:], r.fields[f], int(num)*numFields+f)
}

// text returns the text at p in meta, a device's metadata, or texts[key].
func (d *Devices) text(meta []byte, p pos, key int) string {
	switch {
	case p.off == notInArena:
		return d.texts[key]
	case p.n > 0:
		return unsafe.String(&meta[p.off], p.n)
	}
	return ""
}

// device returns stored device number num.
func (d *Devices) device(num uint32) (dev Device) {
	d.fill(&dev, num)
	return dev
}

// fill sets *dev to stored device number num. Its Metadata is capped so
// that appending to it cannot overwrite its neighbour in the arena.
//
// Lookup fills its result in place: a Device is too big to be returned in
// registers, and building it in a variable first, to return it, costs one
// more copy of it, which made Lookup 40% slower (BenchmarkLookup).
func (d *Devices) fill(dev *Device, num uint32) {
	r := d.rec(num)
	end := r.start + r.size
	meta := d.blocks[r.block][r.start:end:end]
	key := int(num) * numFields
	dev.ID = d.text(meta, r.fields[fieldID], key+fieldID)
	dev.AssetTag = d.text(meta, r.fields[fieldAssetTag], key+fieldAssetTag)
	dev.LocationID = d.text(meta, r.fields[fieldLocationID], key+fieldLocationID)
	dev.TenantName = d.text(meta, r.fields[fieldTenant], key+fieldTenant)
	dev.Metadata = meta
}

// Lookup returns the device with the given id. It does not allocate: the
// Device's strings and Metadata point into the table.
func (d *Devices) Lookup(id string) (dev Device, found bool) {
	num, found := d.find(id)
	if found {
		d.fill(&dev, num)
	}
	return dev, found
}

// find returns the number of the stored device with the given id.
func (d *Devices) find(id string) (uint32, bool) {
	if d == nil || len(d.index) == 0 {
		return 0, false
	}
	h := maphash.String(d.seed, id)
	mask := uint64(len(d.index) - 1)
	for i := h >> d.shift; ; i = (i + 1) & mask {
		slot := d.index[i]
		if slot == 0 {
			return 0, false
		}
		if slot>>32 == h>>32 {
			if num := uint32(slot) - 1; d.field(num, fieldID) == id {
				return num, true
			}
		}
	}
}

// Len returns the number of devices.
func (d *Devices) Len() int {
	if d == nil {
		return 0
	}
	return d.stats.Rows - d.stats.Blank - d.stats.Duplicates
}

// Stats returns what parsing the table's file found.
func (d *Devices) Stats() ParseStats {
	if d == nil {
		return ParseStats{}
	}
	return d.stats
}

// Bytes is about what the table keeps: every record's metadata and its
// share of the records and index, duplicates included. It is what
// ParseMetadataWithin's limit is held to.
func (d *Devices) Bytes() int64 { return d.bytes }

// stored returns the number of stored devices, duplicates included.
func (d *Devices) stored() int {
	if len(d.recs) == 0 {
		return 0
	}
	return (len(d.recs)-1)*chunkLen + len(d.recs[len(d.recs)-1])
}

// buildIndex indexes the stored devices, later ones replacing earlier ones
// with the same id, and counts the duplicates. The index is at most half
// full. A slot holds the high 32 bits of the id's hash, whose top bits are
// the home slot, and the device number + 1 (0 is an empty slot): probes
// compare ids only when hashes agree.
//
// Slots are inserted in the order of their home slots, so that the index
// is written front to back rather than at random: with a million devices,
// whose index is far bigger than the CPU's caches, that halves the time
// (BenchmarkParseMetadata). Device numbers are 32 bits and home slots at
// most 32 bits, which is plenty.
//
// pauser, if not nil, is paused every pauseEvery devices of each pass (see
// Pauser).
func (d *Devices) buildIndex(pauser Pauser) {
	n := d.stored()
	if n == 0 {
		return
	}
	bits := uint(1)
	for 1<<bits < 2*n {
		bits++
	}
	d.shift = 64 - bits
	d.seed = maphash.MakeSeed()
	d.index = make([]uint64, 1<<bits)
	slots := make([]uint64, n)
	for num := range uint32(n) {
		h := maphash.String(d.seed, d.field(num, fieldID))
		slots[num] = h&^(1<<32-1) | uint64(num+1)
		pauseAt(pauser, int(num))
	}
	for i, slot := range sortByHome(slots, bits) {
		d.insert(slot)
		pauseAt(pauser, i)
	}
}

// pauseEvery is how many devices buildIndex indexes between two pauses:
// about 0.1 ms of work, like a paced parse between two reads.
const pauseEvery = 4096

// pauseAt pauses pauser, if not nil, after every pauseEvery devices.
func pauseAt(pauser Pauser, i int) {
	if pauser != nil && i%pauseEvery == pauseEvery-1 {
		pauser.Pause()
	}
}

// sortByHome returns slots ordered by their top bits, and stably so: a
// counting sort on the top 10 bits, enough to keep each part of the index
// being written in cache.
func sortByHome(slots []uint64, bits uint) []uint64 {
	if bits < 16 {
		return slots // the index fits in cache anyway
	}
	const partBits = 10
	var starts [1<<partBits + 1]int
	for _, s := range slots {
		starts[s>>(64-partBits)+1]++
	}
	for p := 1; p < len(starts); p++ {
		starts[p] += starts[p-1]
	}
	sorted := make([]uint64, len(slots))
	for _, s := range slots {
		p := s >> (64 - partBits)
		sorted[starts[p]] = s
		starts[p]++
	}
	return sorted
}

// insert puts slot into the index, replacing the slot of a device with the
// same id.
func (d *Devices) insert(slot uint64) {
	mask := uint64(len(d.index) - 1)
	i := slot >> d.shift
	for ; d.index[i] != 0; i = (i + 1) & mask {
		old := d.index[i]
		if old>>32 == slot>>32 && d.field(uint32(old)-1, fieldID) == d.field(uint32(slot)-1, fieldID) {
			d.stats.Duplicates++
			break
		}
	}
	d.index[i] = slot
}
