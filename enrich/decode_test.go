package enrich

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// envelope returns a push envelope carrying data, as Pub/Sub posts it.
func envelope(data string) []byte {
	return []byte(`{"message":{"data":"` + base64.StdEncoding.EncodeToString([]byte(data)) +
		`","attributes":{"origin":"headset"},"messageId":"1001","publishTime":"2026-11-24T08:00:00.123Z"},` +
		`"subscription":"projects/demo/subscriptions/device-events-push","deliveryAttempt":2}`)
}

func TestDecodePush(t *testing.T) {
	publish := time.Date(2026, 11, 24, 8, 0, 0, 123e6, time.UTC)
	full := PushEnvelope{
		Message: Message{
			Data:        []byte(`{"device_id":"vr-0001"}`),
			Attributes:  map[string]string{"origin": "headset"},
			MessageID:   "1001",
			PublishTime: publish,
		},
		Subscription:    "projects/demo/subscriptions/device-events-push",
		DeliveryAttempt: 2,
	}
	noData := full
	noData.Message.Data = nil
	tests := []struct {
		name   string
		body   string
		want   PushEnvelope
		reason Reason // "" means no error
	}{
		{"push envelope", string(envelope(`{"device_id":"vr-0001"}`)), full, ""},
		{"minimal", `{"message":{"messageId":"7"}}`, PushEnvelope{Message: Message{MessageID: "7"}}, ""},
		{"empty message", `{"message":{}}`, PushEnvelope{}, ""},
		{"ordering key and unknown fields", `{"message":{"messageId":"8","orderingKey":"k","message_id":"8"},"extra":1}`,
			PushEnvelope{Message: Message{MessageID: "8", OrderingKey: "k"}}, ""},
		{"bad base64", `{"message":{"data":"not base64!","attributes":{"origin":"headset"},"messageId":"1001",` +
			`"publishTime":"2026-11-24T08:00:00.123Z"},"subscription":"projects/demo/subscriptions/device-events-push",` +
			`"deliveryAttempt":2}`, noData, ReasonBadBase64},
		{"not JSON", `message=hello`, PushEnvelope{}, ReasonInvalidEnvelope},
		{"empty body", ``, PushEnvelope{}, ReasonInvalidEnvelope},
		{"truncated", `{"message":{"messageId":"1"`, PushEnvelope{}, ReasonInvalidEnvelope},
		{"array", `[{"message":{}}]`, PushEnvelope{}, ReasonInvalidEnvelope},
		{"string", `"message"`, PushEnvelope{}, ReasonInvalidEnvelope},
		{"null", `null`, PushEnvelope{}, ReasonInvalidEnvelope},
		{"no message", `{"subscription":"s"}`, PushEnvelope{Subscription: "s"}, ReasonInvalidEnvelope},
		{"null message", `{"message":null}`, PushEnvelope{}, ReasonInvalidEnvelope},
		{"message not an object", `{"message":"hello"}`, PushEnvelope{}, ReasonInvalidEnvelope},
		{"data not a string", `{"message":{"data":42}}`, PushEnvelope{}, ReasonInvalidEnvelope},
		{"bad publish time", `{"message":{"publishTime":"yesterday"}}`, PushEnvelope{}, ReasonInvalidEnvelope},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodePush([]byte(tt.body))
			if reason, _ := ReasonOf(err); reason != tt.reason || (err != nil) != (tt.reason != "") {
				t.Fatalf("DecodePush(%q) error = %v, want reason %q", tt.body, err, tt.reason)
			}
			if !sameEnvelope(got, tt.want) {
				t.Errorf("DecodePush(%q) = %+v, want %+v", tt.body, got, tt.want)
			}
		})
	}
}

// sameEnvelope reports whether a and b are equal, nil and empty data and
// attributes being equal.
func sameEnvelope(a, b PushEnvelope) bool {
	am, bm := a.Message, b.Message
	return string(am.Data) == string(bm.Data) && maps.Equal(am.Attributes, bm.Attributes) &&
		am.MessageID == bm.MessageID && am.PublishTime.Equal(bm.PublishTime) &&
		am.OrderingKey == bm.OrderingKey && a.Subscription == b.Subscription &&
		a.DeliveryAttempt == b.DeliveryAttempt
}

// TestDecodePushMatchesUnmarshal checks that DecodePush decodes a valid
// envelope exactly as encoding/json does.
func TestDecodePushMatchesUnmarshal(t *testing.T) {
	body := envelope(`{"device_id":"vr-0001","event_time":"2026-11-24T07:59:58Z"}`)
	var want PushEnvelope
	if err := json.Unmarshal(body, &want); err != nil {
		t.Fatal(err)
	}
	got, err := DecodePush(body)
	if err != nil || !sameEnvelope(got, want) {
		t.Errorf("DecodePush(%s) = %+v, %v, want %+v", body, got, err, want)
	}
}

// fastPathCases are envelopes on both sides of the fast path's fallback
// rule (decode_fast.go). fast tells whether decodePushFast takes the body;
// either way DecodePush must return exactly what decodePushJSON returns.
// FuzzDecode starts from them too.
var fastPathCases = []struct {
	name string
	body string
	fast bool
}{
	// Taken by the fast path.
	{"push envelope", string(envelope(`{"device_id":"vr-0001"}`)), true},
	{"minimal", `{"message":{"messageId":"7"}}`, true},
	{"empty message", `{"message":{}}`, true},
	{"empty data and attributes", "\t{ \"message\" : { \"data\" : \"\" , \"attributes\" : { } } }\r\n", true},
	{"unknown fields, null ones too", `{"message":{"messageId":"8","orderingKey":"k","message_id":"8","x":{"y":[1,null,"\u00e9"]}},"extra":null}`, true},
	{"escaped strings", `{"message":{"messageId":"a\"b\u00e9","orderingKey":"\ud800","attributes":{"k\n":"v\/"}},"subscription":"s\\t"}`, true},
	{"non-ASCII attributes", `{"message":{"attributes":{"pays":"España","ſ":"K","":""}}}`, true},
	{"repeated attribute", `{"message":{"attributes":{"a":"1","b":"2","a":"3"}}}`, true},
	{"publish time with offset", `{"message":{"publishTime":"2026-11-24T09:00:00.5+01:00"}}`, true},
	{"publish time UTC", `{"message":{"publishTime":"2026-11-24T08:00:00Z"}}`, true},
	{"delivery attempt negative", `{"message":{},"deliveryAttempt":-3}`, true},
	{"delivery attempt minus zero", `{"message":{},"deliveryAttempt":-0}`, true},
	{"delivery attempt max int", `{"message":{},"deliveryAttempt":9223372036854775807}`, true},
	{"data without padding", `{"message":{"data":"QUI="}}`, true},
	{"depth at the limit", `{"message":{},"x":` + strings.Repeat("[", maxDepth-1) + strings.Repeat("]", maxDepth-1) + `}`, true},

	// Left to encoding/json.
	{"key differs in case", `{"message":{"MessageId":"7"}}`, false},
	{"envelope key differs in case", `{"Message":{"messageId":"7"}}`, false},
	{"key folds to a name", `{"message":{"attributeſ":{"a":"b"}}}`, false},
	{"escaped key", `{"message":{"message\u0049d":"7"}}`, false},
	{"non-ASCII unknown key", `{"message":{"é":1}}`, false},
	{"repeated field", `{"message":{"messageId":"1","messageId":"2"}}`, false},
	{"repeated message merges", `{"message":{"messageId":"1"},"message":{"orderingKey":"k"}}`, false},
	{"null message", `{"message":null}`, false},
	{"null message id", `{"message":{"messageId":null}}`, false},
	{"null data", `{"message":{"data":null}}`, false},
	{"null attributes", `{"message":{"attributes":null}}`, false},
	{"null attribute", `{"message":{"attributes":{"a":null}}}`, false},
	{"null publish time", `{"message":{"publishTime":null}}`, false},
	{"null delivery attempt", `{"message":{},"deliveryAttempt":null}`, false},
	{"no message", `{"subscription":"s"}`, false},
	{"delivery attempt with fraction", `{"message":{},"deliveryAttempt":1.0}`, false},
	{"delivery attempt with exponent", `{"message":{},"deliveryAttempt":1e2}`, false},
	{"delivery attempt overflows", `{"message":{},"deliveryAttempt":9223372036854775808}`, false},
	{"delivery attempt string", `{"message":{},"deliveryAttempt":"2"}`, false},
	{"escaped data", `{"message":{"data":"QUI\u003d"}}`, false},
	{"data with escaped newline", `{"message":{"data":"QU\nI="}}`, false},
	{"data with a quote", `{"message":{"data":"Q\"UI="}}`, false},
	{"data with a raw LF", "{\"message\":{\"data\":\"QUJD\nQUJD\n\n\n\"}}", false},
	{"data with a raw CR in its padding", "{\"message\":{\"data\":\"QQ=\r=\"}}", false},
	{"data with a raw LF, length not a multiple of 4", "{\"message\":{\"data\":\"QUI=\n\"}}", false},
	{"data with padding", `{"message":{"data":"QQ=="}}`, true},
	{"bad base64", `{"message":{"data":"not base64!","messageId":"1"},"subscription":"s"}`, false},
	{"data not a string", `{"message":{"data":42}}`, false},
	{"attributes not an object", `{"message":{"attributes":["a"]}}`, false},
	{"attribute not a string", `{"message":{"attributes":{"a":1}}}`, false},
	{"subscription not a string", `{"message":{},"subscription":5}`, false},
	{"message id an object", `{"message":{"messageId":{}}}`, false},
	{"message not an object", `{"message":"hello"}`, false},
	{"bad publish time", `{"message":{"publishTime":"yesterday"}}`, false},
	{"escaped publish time", `{"message":{"publishTime":"2026-11-24T08:00:00\u005a"}}`, false},
	{"invalid UTF-8", "{\"message\":{\"messageId\":\"\xff\"}}", false},
	{"control character", "{\"message\":{\"messageId\":\"a\tb\"}}", false},
	{"trailing comma", `{"message":{"messageId":"1",}}`, false},
	{"trailing garbage", `{"message":{}} x`, false},
	{"missing colon", `{"message" {}}`, false},
	{"truncated", `{"message":{"data":"QUI=`, false},
	{"over the depth limit", `{"message":{},"x":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`, false},
	{"over the depth limit in message", `{"message":{"x":` + strings.Repeat("[", maxDepth-1) + strings.Repeat("]", maxDepth-1) + `}}`, false},
	{"array", `[{"message":{}}]`, false},
	{"null", `null`, false},
	{"empty body", ``, false},
}

func TestDecodePushFastPath(t *testing.T) {
	for _, tt := range fastPathCases {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			if _, fast := decodePushFast(body); fast != tt.fast {
				t.Errorf("decodePushFast(%.200q) took the fast path: %v, want %v", body, fast, tt.fast)
			}
			checkDecodePush(t, body)
		})
	}
}

// checkDecodePush checks that DecodePush(body) returns exactly what
// decodePushJSON, the reference, returns: deeply equal envelopes (nil and
// empty data or attributes told apart, times with the same location) and
// errors with the same reason and message.
func checkDecodePush(t *testing.T, body []byte) {
	t.Helper()
	env, err := DecodePush(body)
	want, wantErr := decodePushJSON(body)
	if kept := env.Message.attributesJSON; kept != nil {
		if encoded := attributesJSON(env.Message.Attributes); !bytes.Equal(kept, encoded) {
			t.Fatalf("DecodePush(%.200q) kept attributes %s, attributesJSON encodes %s", body, kept, encoded)
		}
		env.Message.attributesJSON = nil
	}
	if !reflect.DeepEqual(env, want) {
		t.Fatalf("DecodePush(%.200q) = %#v, decodePushJSON: %#v", body, env, want)
	}
	reason, _ := ReasonOf(err)
	wantReason, _ := ReasonOf(wantErr)
	if (err == nil) != (wantErr == nil) || reason != wantReason || err != nil && err.Error() != wantErr.Error() {
		t.Fatalf("DecodePush(%.200q) error = %v, decodePushJSON: %v", body, err, wantErr)
	}
}

// TestFastPathFields checks that the fast path knows every field of the
// envelope and message, by the JSON names encoding/json uses.
func TestFastPathFields(t *testing.T) {
	for _, tt := range []struct {
		typ   reflect.Type
		names []string
	}{
		{reflect.TypeFor[pushWire](), envelopeFields[:]},
		{reflect.TypeFor[Message](), messageFields[:]},
	} {
		var tags []string
		for f := range tt.typ.Fields() {
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			tags = append(tags, name)
		}
		if !slices.Equal(tags, tt.names) {
			t.Errorf("%v has JSON fields %q, the fast path knows %q", tt.typ, tags, tt.names)
		}
	}
}

// TestDecodePushAllocs guards the fast path's allocation budget: the
// data, one block for all the strings, the attributes map, and the
// attributes' JSON for the row (which BuildRow then need not allocate).
func TestDecodePushAllocs(t *testing.T) {
	const budget = 5
	if n := testing.AllocsPerRun(100, func() { DecodePush(benchBody) }); n > budget {
		t.Errorf("DecodePush(benchBody) allocates %v times, want at most %d", n, budget)
	}
}

// FuzzDecodePush holds DecodePush to decodePushJSON on envelopes built
// from raw JSON fragments (pushBody): the fuzzer varies the values, the
// spacing and one more member, and mostly keeps the shape the fast path
// takes, which FuzzDecode's free-form bodies seldom have.
func FuzzDecodePush(f *testing.F) {
	typical := []string{" ", `"eyJkZXZpY2VfaWQiOiJ2ci0wMDAxIn0="`, `"origin"`, `"headset"`, `"1001"`,
		`"2026-11-24T08:00:00.123Z"`, `2`, `"extra"`, `{"a":[1,null]}`}
	f.Add(typical[0], typical[1], typical[2], typical[3], typical[4], typical[5], typical[6], typical[7], typical[8], uint8(0))
	for _, change := range []struct {
		i     int
		value string
	}{
		{0, ""}, {0, "\n\t"}, {1, `""`}, {1, `"QUI"`}, {1, `"QU\u0049="`}, {1, `null`}, {2, `"\u00e9"`},
		{3, `"ſ"`}, {3, `7`}, {4, `"a\"b"`}, {4, `""`}, {4, `null`}, {5, `"2026-11-24T09:00:00+01:00"`},
		{5, `"2026-11-24T08:00:00\u005a"`}, {6, `-0`}, {6, `1.0`}, {6, `9223372036854775808`}, {6, `""`},
		{7, `"messageId"`}, {7, `"MessageID"`}, {7, `"data"`}, {7, `"message"`}, {7, `"origin"`}, {8, `null`},
	} {
		args := slices.Clone(typical)
		args[change.i] = change.value
		for where := range uint8(3) {
			f.Add(args[0], args[1], args[2], args[3], args[4], args[5], args[6], args[7], args[8], where)
		}
	}
	f.Fuzz(func(t *testing.T, space, data, attrKey, attrValue, messageID, publishTime, attempt, key, value string, where uint8) {
		checkDecodePush(t, pushBody(space, data, attrKey, attrValue, messageID, publishTime, attempt, key, value, where))
	})
}

// pushBody builds a push envelope from raw JSON fragments: space goes
// between the tokens, a field whose fragment is "" is left out, and the
// member key: value goes into the envelope, the message or the attributes
// (where % 3).
func pushBody(space, data, attrKey, attrValue, messageID, publishTime, attempt, key, value string, where uint8) []byte {
	var extra [3][2]string
	extra[where%3] = [2]string{key, value}
	attrs := object(space, attrKey, attrValue, extra[2][0], extra[2][1])
	message := object(space, `"data"`, data, `"attributes"`, attrs, `"messageId"`, messageID,
		`"publishTime"`, publishTime, extra[1][0], extra[1][1])
	return []byte(object(space, `"message"`, message, `"subscription"`, `"projects/demo/subscriptions/push"`,
		`"deliveryAttempt"`, attempt, extra[0][0], extra[0][1]))
}

// object returns a JSON object of the raw keys and values in members
// (key, value, key, value...), leaving out those with an empty key or
// value, with space between the tokens.
func object(space string, members ...string) string {
	var b strings.Builder
	b.WriteString("{" + space)
	sep := ""
	for i := 0; i+1 < len(members); i += 2 {
		if members[i] != "" && members[i+1] != "" {
			b.WriteString(sep + members[i] + space + ":" + space + members[i+1])
			sep = space + "," + space
		}
	}
	b.WriteString(space + "}")
	return b.String()
}

// TestDecodePushKeepsAttributesJSON shows when DecodePush keeps the
// attributes' JSON from the body for the row: only when it is exactly
// what attributesJSON would write (checkDecodePush checks that it is).
func TestDecodePushKeepsAttributesJSON(t *testing.T) {
	tests := []struct {
		attrs string
		kept  bool
	}{
		{`{}`, true},
		{`{"origin":"headset"}`, true},
		{`{"a":"1","b":"2","c":""}`, true},
		{`{"a":"y","a!":"x"}`, true},  // "a" sorts before "a!"
		{`{"a!":"x","a":"y"}`, false}, // ... though `"a!"` sorts before `"a"`
		{`{"b":"2","a":"1"}`, false},  // out of order
		{`{"a":"1","a":"2"}`, false},  // a key twice
		{`{"a": "1"}`, false},         // whitespace
		{`{ "a":"1"}`, false},
		{`{"a":"1" }`, false},
		{`{"a":"\u00e9"}`, false},       // an escape
		{`{"\u0061":"1"}`, false},       // an escaped key
		{`{"a":"é","é":"<&>"}`, true},   // written as they are
		{`{"a":"1","b":"x\ty"}`, false}, // an escape, not the first member
		{`{"k":"v","l":"w","m":"x"}`, true},
	}
	for _, tt := range tests {
		body := []byte(`{"message":{"data":"e30=","attributes":` + tt.attrs + `,"messageId":"1"}}`)
		checkDecodePush(t, body)
		env, err := DecodePush(body)
		if err != nil {
			t.Fatalf("DecodePush(%s): %v", body, err)
		}
		if kept := env.Message.attributesJSON != nil; kept != tt.kept {
			t.Errorf("DecodePush with attributes %s: kept their JSON %v, want %v", tt.attrs, kept, tt.kept)
		}
	}
}

// TestCheckPublishTime: a publish time BigQuery cannot store, in UTC, is a
// permanent invalid_envelope error; the range's ends and the zero time (no
// publishTime) are not.
func TestCheckPublishTime(t *testing.T) {
	for _, tc := range []struct {
		at   string
		want bool // an error
	}{
		{"0001-01-01T00:00:00Z", false},
		{"2026-11-24T08:00:00.123Z", false},
		{"9999-12-31T23:59:59.999999999Z", false},
		{"9999-12-31T23:30:00-01:00", true},    // year 10000 in UTC
		{"0001-01-01T00:30:00+01:00", true},    // year 0 in UTC
		{"0001-01-01T00:00:00.5+00:00", false}, // same instant as ...Z plus 0.5 s
	} {
		at, err := time.Parse(time.RFC3339Nano, tc.at)
		if err != nil {
			t.Fatal(err)
		}
		err = CheckPublishTime(at)
		if (err != nil) != tc.want {
			t.Errorf("CheckPublishTime(%s) = %v, want an error: %v", tc.at, err, tc.want)
		}
		if r, _ := ReasonOf(err); err != nil && r != ReasonInvalidEnvelope {
			t.Errorf("CheckPublishTime(%s) reason = %s, want %s", tc.at, r, ReasonInvalidEnvelope)
		}
	}
	if err := CheckPublishTime(time.Time{}); err != nil {
		t.Errorf("CheckPublishTime(zero) = %v, want nil", err)
	}
}
