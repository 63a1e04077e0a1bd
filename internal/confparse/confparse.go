// Package confparse reads configuration that people write by hand: YAML
// nodes read strictly (mappings that refuse a key given twice, single
// values, lists of single values, structs that refuse unknown keys) and
// the text of durations and integers. Its errors describe the value and
// leave it to the caller to name the setting and the line, so that a flag,
// an environment variable and a config file key report one problem alike.
//
// It holds no state. cmd/helpcaster reads the server settings with it and
// signaling/auth the organizations.
package confparse

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Deref follows aliases (*name) to the node they stand for.
func Deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// IsNull reports whether n is absent or written as null (or left empty).
func IsNull(n *yaml.Node) bool {
	return n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// Pairs returns the key/value pairs of the mapping m, aliases followed,
// refusing a key that is not a plain name or that appears twice. where
// prefixes the key in the error ("orgs[0].").
func Pairs(m *yaml.Node, where string) ([][2]*yaml.Node, error) {
	out := make([][2]*yaml.Node, 0, len(m.Content)/2)
	seen := make(map[string]bool, len(m.Content)/2)
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := Deref(m.Content[i]), Deref(m.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("line %d: keys must be plain names", k.Line)
		}
		if seen[k.Value] {
			return nil, fmt.Errorf("line %d: key %q appears twice", k.Line, where+k.Value)
		}
		seen[k.Value] = true
		out = append(out, [2]*yaml.Node{k, v})
	}
	return out, nil
}

// Scalar returns the text of a single value; with list, a sequence of
// single values is joined with commas.
func Scalar(n *yaml.Node, list bool) (string, error) {
	switch {
	case n.Kind == yaml.ScalarNode:
		return n.Value, nil
	case n.Kind == yaml.SequenceNode && list:
		vals, err := StringList(n)
		return strings.Join(vals, ","), err
	case n.Kind == yaml.SequenceNode:
		return "", errors.New("must be a single value, not a list")
	default:
		return "", errors.New("must be a single value, not a mapping")
	}
}

// StringList returns the items of a sequence of single values; a single
// value is a list of one.
func StringList(n *yaml.Node) ([]string, error) {
	if n.Kind == yaml.ScalarNode {
		return []string{n.Value}, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, errors.New("must be a list")
	}
	out := make([]string, 0, len(n.Content))
	for _, item := range n.Content {
		item = Deref(item)
		if item.Kind != yaml.ScalarNode {
			return nil, errors.New("list items must be single values")
		}
		out = append(out, item.Value)
	}
	return out, nil
}

// DecodeStrict decodes n into dst, refusing keys dst does not have. The
// error is yaml's, without its line numbers: they would count from n, not
// from the top of the file, so the caller names n's line instead.
func DecodeStrict(n *yaml.Node, dst any) error {
	raw, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(dst); err != nil {
		msg := err.Error()
		msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n  ")
		return errors.New(lineRef.ReplaceAllString(msg, ""))
	}
	return nil
}

// lineRef matches yaml's "line N: " prefixes.
var lineRef = regexp.MustCompile(`line \d+: `)

// Int parses a decimal integer from lo to hi.
func Int(v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%q is not an integer", v)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%d is out of range (%d-%d)", n, lo, hi)
	}
	return n, nil
}

// Duration parses a Go duration ("15s", "2m"). It must be positive, or
// zero when zeroOK.
func Duration(v string, zeroOK bool) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (like 15s, 500ms or 2m)", v)
	}
	if d < 0 || (d == 0 && !zeroOK) {
		return 0, fmt.Errorf("%s must be positive", v)
	}
	return d, nil
}
