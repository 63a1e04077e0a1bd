package bidi

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// Tab is one top-level browsing context (a tab) of a browser.
type Tab struct {
	conn *Conn
	ID   string // the browsing context id
}

// NewTab opens a new tab on about:blank.
func NewTab(ctx context.Context, c *Conn) (*Tab, error) {
	var res struct {
		Context string `json:"context"`
	}
	if err := c.Call(ctx, "browsingContext.create", map[string]any{"type": "tab"}, &res); err != nil {
		return nil, err
	}
	return &Tab{conn: c, ID: res.Context}, nil
}

// Navigate loads url in the tab and waits until the page has loaded.
func (t *Tab) Navigate(ctx context.Context, url string) error {
	return t.conn.Call(ctx, "browsingContext.navigate",
		map[string]any{"context": t.ID, "url": url, "wait": "complete"}, nil)
}

// ScriptError is a JavaScript exception thrown by an evaluated expression
// (or a rejected promise it returned).
type ScriptError struct {
	Text string
}

func (e *ScriptError) Error() string { return "bidi: script threw: " + e.Text }

// Evaluate runs a JavaScript expression in the tab's page, awaiting the
// promise it returns, and stores the result in out (like json.Unmarshal;
// out may be nil to ignore it). The expression runs as if the user had
// just interacted with the page (user activation), so it may start media
// playback. Results are plain data: undefined and null, booleans, numbers,
// strings, arrays and objects of them.
func (t *Tab) Evaluate(ctx context.Context, expr string, out any) error {
	var res struct {
		Type             string          `json:"type"` // "success" or "exception"
		Result           json.RawMessage `json:"result"`
		ExceptionDetails struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	err := t.conn.Call(ctx, "script.evaluate", map[string]any{
		"expression":      expr,
		"target":          map[string]any{"context": t.ID},
		"awaitPromise":    true,
		"resultOwnership": "none",
		"userActivation":  true,
	}, &res)
	if err != nil {
		return err
	}
	if res.Type == "exception" {
		return &ScriptError{Text: res.ExceptionDetails.Text}
	}
	v, err := decodeRemote(res.Result)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("bidi: script result: %w", err)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("bidi: script result %s: %w", data, err)
	}
	return nil
}

// remoteValue is a serialized JavaScript value (the protocol's RemoteValue).
type remoteValue struct {
	Type  string          `json:"type"`
	Value json.RawMessage `json:"value"`
}

// decodeRemote turns a RemoteValue into nil, bool, float64, string,
// []any or map[string]any. Numbers that JSON cannot hold (NaN, ±Infinity)
// are an error, as are values that are not plain data (functions, nodes,
// promises...).
func decodeRemote(raw json.RawMessage) (any, error) {
	var rv remoteValue
	if err := json.Unmarshal(raw, &rv); err != nil {
		return nil, fmt.Errorf("bidi: remote value: %w", err)
	}
	switch rv.Type {
	case "undefined", "null":
		return nil, nil
	case "boolean":
		var b bool
		err := json.Unmarshal(rv.Value, &b)
		return b, wrapValue(rv.Type, err)
	case "string":
		var s string
		err := json.Unmarshal(rv.Value, &s)
		return s, wrapValue(rv.Type, err)
	case "bigint", "date":
		var s string
		err := json.Unmarshal(rv.Value, &s)
		return s, wrapValue(rv.Type, err)
	case "number":
		return decodeNumber(rv.Value)
	case "array", "set":
		var items []json.RawMessage
		if len(rv.Value) == 0 || json.Unmarshal(rv.Value, &items) != nil {
			return nil, fmt.Errorf("bidi: %s value not serialized (nested too deep?)", rv.Type)
		}
		out := make([]any, len(items))
		for i, it := range items {
			v, err := decodeRemote(it)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case "object", "map":
		var entries [][2]json.RawMessage
		if len(rv.Value) == 0 || json.Unmarshal(rv.Value, &entries) != nil {
			return nil, fmt.Errorf("bidi: %s value not serialized (nested too deep?)", rv.Type)
		}
		out := make(map[string]any, len(entries))
		for _, e := range entries {
			key, err := decodeKey(e[0])
			if err != nil {
				return nil, err
			}
			v, err := decodeRemote(e[1])
			if err != nil {
				return nil, err
			}
			out[key] = v
		}
		return out, nil
	default:
		return nil, fmt.Errorf("bidi: a JavaScript %s is not plain data", rv.Type)
	}
}

// decodeKey reads an object key (a string) or a map key (a RemoteValue,
// written with fmt's %v).
func decodeKey(raw json.RawMessage) (string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	v, err := decodeRemote(raw)
	if err != nil {
		return "", err
	}
	if s, ok := v.(string); ok {
		return s, nil
	}
	return fmt.Sprint(v), nil
}

// decodeNumber reads a number, which the protocol sends as a JSON number or
// as one of the strings "NaN", "-0", "Infinity" and "-Infinity".
func decodeNumber(raw json.RawMessage) (any, error) {
	var f float64
	if json.Unmarshal(raw, &f) == nil {
		return f, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, wrapValue("number", err)
	}
	if s == "-0" {
		return math.Copysign(0, -1), nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
		return f, nil
	}
	return nil, fmt.Errorf("bidi: the number %s cannot be represented as JSON", s)
}

func wrapValue(typ string, err error) error {
	if err != nil {
		return fmt.Errorf("bidi: %s value: %w", typ, err)
	}
	return nil
}
