package confparse

import (
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// node parses doc and returns its top node.
func node(t *testing.T, doc string) *yaml.Node {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
		t.Fatal(err)
	}
	return root.Content[0]
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestPairs(t *testing.T) {
	kvs, err := Pairs(node(t, "a: &x 1\nb: *x\n"), "")
	if err != nil || len(kvs) != 2 || kvs[1][1].Value != "1" {
		t.Errorf("aliases: %v, %v", kvs, err)
	}
	for doc, want := range map[string]string{
		"a: 1\nb: 2\na: 3\n": `line 3: key "s.a" appears twice`,
		"a: 1\n[b]: 2\n":     "line 2: keys must be plain names",
	} {
		if _, err := Pairs(node(t, doc), "s."); errText(err) != want {
			t.Errorf("%q: %v; want %q", doc, err, want)
		}
	}
}

func TestScalar(t *testing.T) {
	tests := []struct {
		doc       string
		list      bool
		want, err string
	}{
		{"x", false, "x", ""},
		{"[a, b]", true, "a,b", ""},
		{"[a, b]", false, "", "must be a single value, not a list"},
		{"{a: b}", true, "", "must be a single value, not a mapping"},
		{"[a, [b]]", true, "", "list items must be single values"},
	}
	for _, tt := range tests {
		got, err := Scalar(node(t, tt.doc), tt.list)
		if got != tt.want || errText(err) != tt.err {
			t.Errorf("Scalar(%s, %v) = %q, %v; want %q, %q", tt.doc, tt.list, got, err, tt.want, tt.err)
		}
	}
	if _, err := StringList(node(t, "{a: b}")); errText(err) != "must be a list" {
		t.Errorf("StringList(mapping): %v", err)
	}
	if !IsNull(node(t, "a: null\n").Content[1]) || !IsNull(node(t, "a:\n").Content[1]) || IsNull(node(t, "a: 0\n").Content[1]) {
		t.Error("IsNull")
	}
}

// TestDecodeStrict: unknown keys are refused, and yaml's line numbers,
// which count from the node, are left out.
func TestDecodeStrict(t *testing.T) {
	var dst []struct {
		A int `yaml:"a"`
	}
	n := node(t, "x:\n  - a: 1\n  - b: 2\n").Content[1]
	if err := DecodeStrict(n, &dst); errText(err) != `field b not found in type struct { A int "yaml:\"a\"" }` {
		t.Errorf("unknown key: %v", err)
	}
	if err := DecodeStrict(node(t, "x: [{a: 1}, {a: 2}]\n").Content[1], &dst); err != nil || len(dst) != 2 || dst[1].A != 2 {
		t.Errorf("decode: %v %v", dst, err)
	}
}

func TestIntDuration(t *testing.T) {
	for v, want := range map[string]string{"7": "", "x": `"x" is not an integer`, "11": "11 is out of range (0-10)", "-1": "-1 is out of range (0-10)"} {
		if _, err := Int(v, 0, 10); errText(err) != want {
			t.Errorf("Int(%q): %v; want %q", v, err, want)
		}
	}
	tests := []struct {
		v      string
		zeroOK bool
		want   time.Duration
		err    string
	}{
		{"1m", false, time.Minute, ""},
		{"0s", true, 0, ""},
		{"0s", false, 0, "0s must be positive"},
		{"-1s", true, 0, "-1s must be positive"},
		{"soon", true, 0, `"soon" is not a duration (like 15s, 500ms or 2m)`},
	}
	for _, tt := range tests {
		if d, err := Duration(tt.v, tt.zeroOK); d != tt.want || errText(err) != tt.err {
			t.Errorf("Duration(%q, %v) = %v, %v; want %v, %q", tt.v, tt.zeroOK, d, err, tt.want, tt.err)
		}
	}
}
