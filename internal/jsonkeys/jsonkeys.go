// Package jsonkeys refuses JSON documents that name the same key twice in one
// object. encoding/json keeps the last of duplicate keys, so a document like
// {"type":"chat","type":"hangup"} can mean one thing to a check that reads one
// key and another to the code that acts on the other. Everything the server
// parses from outside goes through Unique first.
package jsonkeys

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// DuplicateError names a key that appears twice in one object.
type DuplicateError struct {
	Path string // where the object is, e.g. `"a"[2]`; empty at the top level
	Key  string
}

func (e *DuplicateError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("duplicate key %q", e.Key)
	}
	return fmt.Sprintf("duplicate key %q in %s", e.Key, e.Path)
}

// container is one open object or array while walking the document.
type container struct {
	path    string
	keys    map[string]struct{} // nil for an array
	key     string              // object: the key whose value comes next
	wantKey bool                // object: the next token is a key or '}'
	index   int                 // array: index of the next element
}

// childPath is the path of the value that comes next in c.
func (c *container) childPath() string {
	if c.keys != nil {
		return c.path + strconv.Quote(c.key)
	}
	p := c.path + "[" + strconv.Itoa(c.index) + "]"
	c.index++
	return p
}

// Unique reports a *DuplicateError for the first object that holds a key
// twice, or a syntax error if data is not a single JSON value. Keys are
// compared after unescaping, so "a" and "\u0061" are the same key.
func Unique(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // any number is valid JSON, even one no float64 holds
	var stack []*container
	values := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if len(stack) != 0 || values != 1 {
				return errors.New("not a single JSON value")
			}
			return nil
		}
		if err != nil {
			return err
		}
		var top *container
		if n := len(stack); n > 0 {
			top = stack[n-1]
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			continue
		}
		if top != nil && top.wantKey {
			key, _ := tok.(string) // the decoder yields only strings here
			if _, dup := top.keys[key]; dup {
				return &DuplicateError{Path: top.path, Key: key}
			}
			top.keys[key] = struct{}{}
			top.key, top.wantKey = key, false
			continue
		}
		path := ""
		if top == nil {
			values++
		} else {
			path = top.childPath()
			top.wantKey = top.keys != nil
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &container{path: path, keys: map[string]struct{}{}, wantKey: true})
		case json.Delim('['):
			stack = append(stack, &container{path: path})
		}
	}
}
