package enrich

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValid(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	tests := []string{
		``, ` `, `{}`, `[]`, `""`, `0`, `-0`, `1.5e-3`, `1E+2`, `-`, `01`, `1.`, `.5`, `1e`, `+1`, `0x1`,
		`true`, `tru`, `false`, `null`, `nulll`, `NaN`,
		`{"a":1}`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `{"a":1 "b":2}`, `{,}`, `[1,2]`, `[1,]`, `[,1]`, `[1 2]`, `{"a":[}]`,
		`"\u00e9\n\"\\\/\b\f\r\t"`, `"\u00g0"`, `"\u00e"`, `"\x"`, `"a` + "\x01" + `"`, `"a`, `"\`,
		"\"\xff\"", "\"\xc3\xa9\"", "\"\xed\xa0\x80\"", "\xef\xbb\xbf{}", `{} {}`, `{}x`,
		deep(maxDepth), deep(maxDepth + 1),
	}
	for _, d := range tests {
		want := json.Valid([]byte(d)) && utf8.ValidString(d)
		if got := valid([]byte(d)); got != want {
			t.Errorf("valid(%.40q) = %v, want %v", d, got, want)
		}
	}
}
