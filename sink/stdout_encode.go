package sink

import (
	"bytes"
	"encoding/json"
	"math/bits"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/devicestream/enrichevent/enrich"
)

// This file writes the stdout sink's lines. A row line is written by hand,
// without reflection. Its JSON columns (device_metadata, payload,
// attributes) are trusted to hold valid JSON, as enrich.BuildRow's do, and
// are not validated again: a nil or empty one is written as null, any
// other without its insignificant whitespace (stdout_rawjson.go). For such
// a row the line is byte for byte what a json.Encoder with
// SetEscapeHTML(false) writes for rowLine{r} (empty columns as nil):
// FuzzStdoutRow and TestRowLine compare the two. A row with a time that
// time.Time.MarshalJSON rejects goes to encoding/json, which then fails
// with its error.

// rowLine and errorLine are the shapes of the two kinds of line.
type (
	rowLine struct {
		Row *enrich.Row `json:"row"`
	}
	errorLine struct {
		ErrorRecord *enrich.ErrorRecord `json:"error_record"`
	}
)

// appendJSONLine appends v's JSON and a newline to dst, as a json.Encoder
// with SetEscapeHTML(false) writes it. On error dst is returned unchanged.
func appendJSONLine(dst []byte, v any) ([]byte, error) {
	buf := bytes.NewBuffer(dst)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return dst, err
	}
	return buf.Bytes(), nil
}

// appendRowLine appends the line {"row":{...}}\n of r to dst (see
// appendRow). When one of r's times is one that time.Time.MarshalJSON
// rejects, it returns dst unchanged and encoding/json's error for r: that
// of its first such time, as r's JSON columns, trusted, are left out of
// encoding/json's checks.
func appendRowLine(dst []byte, r *enrich.Row) ([]byte, error) {
	b, ok := appendRow(dst, r)
	if ok {
		return b, nil
	}
	times := *r
	times.DeviceMetadata, times.Payload, times.Attributes = nil, nil, nil
	return appendJSONLine(b, rowLine{&times})
}

// appendRow appends r's line to dst and reports true, or reports false
// when one of r's times is one that time.Time.MarshalJSON rejects (dst's
// bytes are then returned unchanged). The fields are enrich.Row's, in its
// order, with its tags and omitempty. The JSON columns are trusted (see
// appendRawJSON): a nil or empty one is written as null, any other must
// hold one valid JSON value and is written without its insignificant
// whitespace, so that the row stays one line; it is not validated again.
// Each time appender takes and returns ok, false once any has failed.
func appendRow(dst []byte, r *enrich.Row) ([]byte, bool) {
	n0 := len(dst)
	b := slices.Grow(dst, rowLineOverhead+len(r.MessageID)+len(r.Subscription)+len(r.DeviceID)+
		len(r.AssetTag)+len(r.LocationID)+len(r.TenantName)+
		len(r.DeviceMetadata)+len(r.Payload)+len(r.Attributes))
	ok := true
	b = append(b, `{"row":{"message_id":`...)
	b = appendJSONString(b, r.MessageID)
	if r.Subscription != "" {
		b = append(b, `,"subscription":`...)
		b = appendJSONString(b, r.Subscription)
	}
	b = append(b, `,"publish_time":`...)
	b, ok = appendJSONTime(b, r.PublishTime, ok)
	b = append(b, `,"event_time":`...)
	b, ok = appendJSONTime(b, r.EventTime, ok)
	b = append(b, `,"device_id":`...)
	b = appendJSONString(b, r.DeviceID)
	b = append(b, `,"device_found":`...)
	b = strconv.AppendBool(b, r.DeviceFound)
	b = append(b, `,"asset_tag":`...)
	b = appendJSONString(b, r.AssetTag)
	b = append(b, `,"location_id":`...)
	b = appendJSONString(b, r.LocationID)
	b = append(b, `,"tenant_name":`...)
	b = appendJSONString(b, r.TenantName)
	b = append(b, `,"device_metadata":`...)
	b = appendRawJSON(b, r.DeviceMetadata)
	b = append(b, `,"payload":`...)
	b = appendRawJSON(b, r.Payload)
	b = append(b, `,"attributes":`...)
	b = appendRawJSON(b, r.Attributes)
	b = append(b, `,"metadata_version":`...)
	b = strconv.AppendInt(b, r.MetadataVersion, 10)
	b = append(b, `,"metadata_loaded_at":`...)
	b, ok = appendJSONTime(b, r.MetadataLoadedAt, ok)
	b = append(b, `,"ingest_time":`...)
	b, ok = appendJSONTime(b, r.IngestTime, ok)
	if !ok {
		return b[:n0], false
	}
	return append(b, "}}\n"...), true
}

// rowLineOverhead bounds a row line's bytes besides its strings and JSON
// columns: keys, punctuation, four times, a number and a bool.
const rowLineOverhead = 448

// appendJSONTime appends t as time.Time.MarshalJSON writes it: RFC 3339
// with nanoseconds, quoted. It reports ok && whether MarshalJSON accepts t
// (a year in 0..9999 and a zone offset under 24 hours); the checks are
// those of time's appendStrictRFC3339. When it reports false, b is to be
// discarded. Times in UTC within those years, the rows' times, are
// formatted by appendUTC.
func appendJSONTime(b []byte, t time.Time, ok bool) ([]byte, bool) {
	if sec := t.Unix(); t.Location() == time.UTC && minUnix <= sec && sec <= maxUnix {
		return appendUTC(b, sec, t.Nanosecond()), ok
	}
	b = append(b, '"')
	n0 := len(b)
	b = t.AppendFormat(b, time.RFC3339Nano)
	switch {
	case b[n0+len("9999")] != '-': // year not exactly 4 digits wide
		ok = false
	case b[len(b)-1] != 'Z':
		c := b[len(b)-len("Z07:00")]
		h := b[len(b)-len("07:00"):]
		if '0' <= c && c <= '9' || 10*(h[0]-'0')+(h[1]-'0') >= 24 {
			ok = false
		}
	}
	return append(b, '"'), ok
}

// minUnix and maxUnix are the first and last second of years 0 to 9999.
const (
	minUnix = -62167219200 // 0000-01-01T00:00:00Z
	maxUnix = 253402300799 // 9999-12-31T23:59:59Z
)

// appendUTC appends the quoted RFC 3339 time of sec seconds since 1970
// and nsec nanoseconds, in UTC, as t.AppendFormat(b, time.RFC3339Nano)
// does: the fraction without trailing zeros, none when nsec is 0. sec is
// within [minUnix, maxUnix]. The date is Howard Hinnant's civil_from_days
// (https://howardhinnant.github.io/date_algorithms.html), counted from
// 1 March of year -400 so that every quantity is non-negative.
func appendUTC(b []byte, sec int64, nsec int) []byte {
	const secondsPerDay, daysPer400Years = 86400, 146097
	days, clock := uint((sec-minUnix)/secondsPerDay), uint((sec-minUnix)%secondsPerDay)
	z := days + daysPer400Years - 60 // 0000-01-01 is 60 days before 0000-03-01
	era, doe := z/daysPer400Years, z%daysPer400Years
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365 // year of era, from March
	doy := doe - (365*yoe + yoe/4 - yoe/100)               // day of that year, from 1 March
	mp := (5*doy + 2) / 153                                // month, from March = 0
	day := doy - (153*mp+2)/5 + 1
	month, year := mp+3, era*400+yoe-400
	if month > 12 {
		month, year = month-12, year+1
	}

	var t [len(`"2006-01-02T15:04:05.999999999Z"`)]byte
	t[0] = '"'
	put2(t[1:], year/100)
	put2(t[3:], year%100)
	t[5] = '-'
	put2(t[6:], month)
	t[8] = '-'
	put2(t[9:], day)
	t[11] = 'T'
	put2(t[12:], clock/3600)
	t[14] = ':'
	put2(t[15:], clock/60%60)
	t[17] = ':'
	put2(t[18:], clock%60)
	n := 20
	if nsec != 0 {
		t[20] = '.'
		for k, ns := 29, uint(nsec); k > 20; k, ns = k-1, ns/10 {
			t[k] = byte('0' + ns%10)
		}
		for n = 30; t[n-1] == '0'; n-- {
		}
	}
	t[n], t[n+1] = 'Z', '"'
	return append(b, t[:n+2]...)
}

// put2 writes the two decimal digits of n < 100 to t.
func put2(t []byte, n uint) {
	const pairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
		"40414243444546474849505152535455565758596061626364656667686970717273747576777879" +
		"8081828384858687888990919293949596979899"
	t[0], t[1] = pairs[2*n], pairs[2*n+1]
}

// jsonSafe marks the bytes that encoding/json copies into a string as they
// are when it does not escape HTML: ASCII, neither a control character nor
// '"' or '\\'. The others are escaped, or start a UTF-8 sequence.
var jsonSafe = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// appendJSONString appends s quoted as encoding/json does without HTML
// escaping: '"' and '\\' escaped, control characters as \b, \f, \n, \r,
// \t or \u00XX, invalid UTF-8 bytes as \ufffd, and U+2028 and U+2029 as
// \u2028 and \u2029 (encoding/json escapes those unconditionally). It
// looks at eight bytes at a time for the next byte that is not plain ASCII
// (see special).
func appendJSONString(b []byte, s string) []byte {
	const highs = 0x8080808080808080
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if i+8 <= len(s) {
			w := load64(s, i)
			m := special(w) | w&highs
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) / 8
		} else if jsonSafe[s[i]] {
			i++
			continue
		}
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			switch {
			case r == utf8.RuneError && size == 1:
				b = append(b, s[start:i]...)
				b = append(b, `\ufffd`...)
			case r == '\u2028' || r == '\u2029':
				b = append(b, s[start:i]...)
				b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			default:
				i += size
				continue
			}
			i += size
			start = i
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// load64 returns the eight bytes of s at i as a little-endian word.
func load64(s string, i int) uint64 {
	_ = s[i+7]
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}
