package jsonkeys

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestUnique(t *testing.T) {
	cases := []struct {
		in      string
		dupKey  string
		dupPath string
		bad     bool // not one JSON value
	}{
		{in: `{}`},
		{in: `[]`},
		{in: `"x"`},
		{in: `{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}]}`},
		{in: `{"type":"chat","type":"hangup"}`, dupKey: "type"},
		{in: `{"a":"1","\u0061":"2"}`, dupKey: "a"},
		{in: `{"a":{"b":1,"b":2}}`, dupKey: "b", dupPath: `"a"`},
		{in: `{"a":[1,{"x":1},{"y":1,"y":2}]}`, dupKey: "y", dupPath: `"a"[2]`},
		{in: `[[{"k":1}],{"k":1,"k":1}]`, dupKey: "k", dupPath: `[1]`},
		{in: `{"a":{},"b":[],"a":1}`, dupKey: "a"},
		{in: `{"a":1`, bad: true},
		{in: `{"a":1}{"b":2}`, bad: true},
		{in: ``, bad: true},
		{in: `{"a":1,}`, bad: true},
	}
	for _, c := range cases {
		err := Unique([]byte(c.in))
		var de *DuplicateError
		switch {
		case c.bad:
			if err == nil {
				t.Errorf("%s: accepted", c.in)
			}
		case c.dupKey != "":
			if !errors.As(err, &de) || de.Key != c.dupKey || de.Path != c.dupPath {
				t.Errorf("%s: got %v, want duplicate %q at %q", c.in, err, c.dupKey, c.dupPath)
			}
		default:
			if err != nil {
				t.Errorf("%s: %v", c.in, err)
			}
		}
	}
}

// FuzzUnique checks Unique against encoding/json: it accepts only valid JSON,
// and a document it accepts decodes to a value that re-encodes (Go maps have
// unique keys) to something it accepts again.
func FuzzUnique(f *testing.F) {
	for _, s := range []string{`{"a":1,"a":2}`, `[{"x":[{"y":1}]}]`, `{"a":"\u0061","\u0061":1}`, `1`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := Unique(data)
		if err == nil && !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		if err != nil && json.Valid(data) {
			var de *DuplicateError
			if !errors.As(err, &de) {
				t.Fatalf("valid JSON %q refused: %v", data, err)
			}
		}
		var v any
		if json.Unmarshal(data, &v) != nil {
			return
		}
		out, err := json.Marshal(v)
		if err != nil {
			return
		}
		if err := Unique(out); err != nil {
			t.Fatalf("re-encoded %q refused: %v", out, err)
		}
	})
}
