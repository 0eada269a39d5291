package enrich

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"
)

// role is what a metadata column means to a row.
type role uint8

const (
	roleNone role = iota
	roleID
	roleAssetTag
	roleLocationID
	roleTenant     // device_location_tenant_name, the original file's column
	roleTenantName // tenant_name, used when device_location_tenant_name is absent
	numRoles
)

// roleOf returns the role of the column or member called name, compared
// case-insensitively (ASCII case). The usual spellings, in lower case, are
// matched without folding; a name with an upper-case letter is matched
// again in lower case.
func roleOf[T string | []byte](name T) role {
	switch string(name) {
	case "device_id":
		return roleID
	case "asset_tag":
		return roleAssetTag
	case "location_id":
		return roleLocationID
	case "device_location_tenant_name":
		return roleTenant
	case "tenant_name":
		return roleTenantName
	}
	var lower [len("device_location_tenant_name")]byte // the longest name
	if len(name) > len(lower) {
		return roleNone
	}
	folded := false
	for i := range len(name) {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
			folded = true
		}
		lower[i] = c
	}
	if !folded {
		return roleNone
	}
	return roleOf(lower[:len(name)])
}

// The Device fields a record locates, in rec.fields.
const (
	fieldID = iota
	fieldAssetTag
	fieldLocationID
	fieldTenant
	numFields
)

// pos locates a Device field inside its record's metadata: meta[off:off+n].
// off == notInArena means the text is in builder.texts instead.
type pos struct{ off, n uint16 }

const notInArena = 0xFFFF

// rec is a stored device: where its metadata and fields are in the arena.
// It holds no pointers, so that the garbage collector has nothing to trace
// in a table of recs, neither while a big file is parsed nor once it is a
// Devices table.
type rec struct {
	block, start, size uint32 // metadata = blocks[block][start:start+size]
	fields             [numFields]pos
}

// span locates a field of the record being built: buf[off:off+n], or
// with off == inText the builder's text for it, or with off == unset
// nothing.
type span struct{ off, n int }

const (
	unset  = -1
	inText = -2
)

// builder accumulates the devices of one metadata file. Each device's
// metadata JSON is written straight into an arena block shared by many
// devices, and its fields are located in that block when the JSON holds
// them verbatim, which is the common case. So a device costs its metadata's
// bytes plus its rec, with no allocation of its own.
type builder struct {
	blocks [][]byte // arena blocks; the last one, buf, is being filled
	buf    []byte
	start  int            // offset in buf of the record being built
	recs   [][]rec        // in chunks of chunkLen
	texts  map[int]string // the fields of recs that are not in the arena
	spans  [numRoles]span // the fields of the record being built
	text   [numRoles]string
	stats  ParseStats
	limit  int64 // of used; 0 for none
	used   int64 // bytes the table will keep: metadata and recs
}

// Arena block sizes: small files stay small, large ones use large blocks.
// A record starts a new block when fewer than minFree bytes are left; a
// record longer than that may grow its block, which is safe because no
// pointer into the arena exists before the table is built.
const (
	firstBlock = 16 << 10
	maxBlock   = 1 << 20
	minFree    = 1 << 10
)

// begin starts a new record, which the caller writes to buf, opening brace
// included, by member or by itself.
func (b *builder) begin() {
	if cap(b.buf)-len(b.buf) < minFree {
		size := firstBlock
		if len(b.blocks) > 0 {
			size = min(2*cap(b.buf), maxBlock)
		}
		b.buf = make([]byte, 0, size)
		b.blocks = append(b.blocks, b.buf)
	}
	b.start = len(b.buf)
	for i := range b.spans {
		b.spans[i].off = unset
	}
}

// member appends to buf the start of a member of the record that starts at
// buf[start], with the given raw JSON key (its quotes included): the
// value comes next.
//
// The record builders append to a local copy of b.buf and store it back
// once: every store of a pointer into the builder costs a write barrier
// while the garbage collector runs.
func member(buf []byte, start int, key []byte) []byte {
	if len(buf) == start {
		buf = append(buf, '{')
	} else {
		buf = append(buf, ',')
	}
	buf = append(buf, key...)
	return append(buf, ':')
}

// setSpan sets field r to buf[off:off+n].
func (b *builder) setSpan(r role, off, n int) { b.spans[r] = span{off, n} }

// setText sets field r to s.
func (b *builder) setText(r role, s string) {
	b.spans[r].off = inText
	b.text[r] = s
}

// maxRecordBytes bounds one device's record in a metadata file (a CSV line,
// a JSON value): its metadata goes into every row of that device, and a
// file without line ends must not be read into memory whole.
const maxRecordBytes = 1 << 20

// errTooLong is wrapped by the error of a record over maxRecordBytes.
var errTooLong = fmt.Errorf("a device record is limited to %d bytes", maxRecordBytes)

// errRecordTooLong is the error for CSV line n, over maxRecordBytes.
func errRecordTooLong(n int) error {
	return fmt.Errorf("line %d is over %d bytes: %w", n, maxRecordBytes, errTooLong)
}

// recBytes is what a stored device costs besides its metadata: its rec
// and its two index slots.
const recBytes = int64(unsafe.Sizeof(rec{})) + 2*8

// ErrTableTooLarge is wrapped by ParseMetadataWithin's error for a file
// whose table would keep more than its limit.
var ErrTableTooLarge = errors.New("metadata table over its limit")

// errTableTooLarge is the error of a file whose table would keep more
// bytes than the builder's limit.
type errTableTooLarge struct{ limit, devices int64 }

func (e errTableTooLarge) Error() string {
	return fmt.Sprintf("the devices table would keep more than %.1f MiB (%d devices read, duplicates included)",
		float64(e.limit)/(1<<20), e.devices)
}

func (e errTableTooLarge) Unwrap() error { return ErrTableTooLarge }

// commit ends the record. It fails when the table would keep more than
// b.limit bytes.
func (b *builder) commit() error {
	b.buf = append(b.buf, '}')
	b.used += int64(len(b.buf)-b.start) + recBytes
	if b.limit > 0 && b.used > b.limit {
		return errTableTooLarge{b.limit, int64(b.stats.Rows)}
	}
	b.blocks[len(b.blocks)-1] = b.buf // append may have moved it
	last := len(b.recs) - 1
	if last < 0 || len(b.recs[last]) == chunkLen {
		b.recs = append(b.recs, make([]rec, 0, chunkLen))
		last++
	}
	num := last*chunkLen + len(b.recs[last])
	b.trimID()
	tenant := roleTenant
	if b.empty(roleTenant) {
		tenant = roleTenantName
	}
	r := rec{block: uint32(len(b.blocks) - 1), start: uint32(b.start), size: uint32(len(b.buf) - b.start)}
	for i, role := range [numFields]role{roleID, roleAssetTag, roleLocationID, tenant} {
		sp := b.spans[role]
		off := sp.off - b.start
		switch {
		case sp.off == unset:
			continue
		case sp.off >= 0 && off < notInArena && sp.n <= 0xFFFF:
			r.fields[i] = pos{uint16(off), uint16(sp.n)}
			continue
		case sp.off >= 0: // beyond what a pos can say: rare
			b.text[role] = string(b.buf[sp.off : sp.off+sp.n])
		}
		r.fields[i].off = notInArena
		if b.texts == nil {
			b.texts = make(map[int]string)
		}
		b.texts[num*numFields+i] = b.text[role]
		b.text[role] = ""
	}
	b.recs[last] = append(b.recs[last], r)
	return nil
}

// trimID drops the spaces around the record's id, so that a hand-edited
// "vr-1 " finds the events of vr-1; the metadata keeps the id as written.
// An id in the arena is JSON string content that needed no escape, so its
// only spaces are ' '.
func (b *builder) trimID() {
	sp := &b.spans[roleID]
	switch sp.off {
	case unset:
	case inText:
		b.text[roleID] = strings.Trim(b.text[roleID], " \t\r\n")
	default:
		for sp.n > 0 && b.buf[sp.off] == ' ' {
			sp.off++
			sp.n--
		}
		for sp.n > 0 && b.buf[sp.off+sp.n-1] == ' ' {
			sp.n--
		}
	}
}

// empty reports whether field r of the record being built is absent or
// the empty string.
func (b *builder) empty(r role) bool {
	switch sp := b.spans[r]; sp.off {
	case unset:
		return true
	case inText:
		return b.text[r] == ""
	default:
		return sp.n == 0
	}
}

// finish returns the table of the parsed devices: the recs, the arena and
// the texts become the table as they are. The arena is final from here on:
// its bytes are never written again. pauser, if not nil, is paused while
// the index is built (see Pauser).
func (b *builder) finish(f Format, pauser Pauser) *Devices {
	b.stats.Format = f
	d := &Devices{recs: b.recs, blocks: b.blocks, texts: b.texts, stats: b.stats, bytes: b.used}
	*b = builder{}
	d.buildIndex(pauser)
	return d
}
