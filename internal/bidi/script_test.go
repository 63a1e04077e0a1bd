package bidi

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeRemote(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want any
	}{
		{`{"type":"undefined"}`, nil},
		{`{"type":"null"}`, nil},
		{`{"type":"boolean","value":true}`, true},
		{`{"type":"string","value":"héllo"}`, "héllo"},
		{`{"type":"number","value":42.5}`, 42.5},
		{`{"type":"number","value":"-0"}`, math.Copysign(0, -1)},
		{`{"type":"bigint","value":"12345678901234567890"}`, "12345678901234567890"},
		{`{"type":"array","value":[{"type":"number","value":1},{"type":"string","value":"a"}]}`, []any{1.0, "a"}},
		{`{"type":"array","value":[]}`, []any{}},
		{`{"type":"object","value":[["a",{"type":"number","value":1}],["b",{"type":"object","value":[["c",{"type":"null"}]]}]]}`,
			map[string]any{"a": 1.0, "b": map[string]any{"c": nil}}},
		{`{"type":"object","value":[]}`, map[string]any{}},
		{`{"type":"map","value":[[{"type":"number","value":2},{"type":"boolean","value":false}]]}`, map[string]any{"2": false}},
	} {
		got, err := decodeRemote(json.RawMessage(tc.in))
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %#v, want %#v", tc.in, got, tc.want)
		}
	}
}

func TestDecodeRemoteRefuses(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"type":"number","value":"NaN"}`, "cannot be represented"},
		{`{"type":"number","value":"Infinity"}`, "cannot be represented"},
		{`{"type":"function","handle":"x"}`, "not plain data"},
		{`{"type":"node","sharedId":"x"}`, "not plain data"},
		{`{"type":"object"}`, "not serialized"},
		{`{"type":"array","value":[{"type":"promise"}]}`, "not plain data"},
		{`{"type":"string","value":7}`, "string value"},
		{`not json`, "remote value"},
	} {
		_, err := decodeRemote(json.RawMessage(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one mentioning %q", tc.in, err, tc.want)
		}
	}
}

func TestUserJS(t *testing.T) {
	js, err := userJS(map[string]any{"b.int": 1, "a.bool": true, "c.str": `say "hi"`})
	if err != nil {
		t.Fatal(err)
	}
	want := "user_pref(\"a.bool\", true);\nuser_pref(\"b.int\", 1);\nuser_pref(\"c.str\", \"say \\\"hi\\\"\");\n"
	if string(js) != want {
		t.Errorf("user.js:\n%s\nwant:\n%s", js, want)
	}
	for _, bad := range []any{1.5, []string{"x"}, nil} {
		if _, err := userJS(map[string]any{"p": bad}); err == nil || !strings.Contains(err.Error(), `pref "p"`) {
			t.Errorf("pref value %#v: err = %v, want a refusal naming the pref", bad, err)
		}
	}
}
