// Package bidi is a small WebDriver BiDi client (https://w3c.github.io/webdriver-bidi/),
// enough to drive headless Firefox from Go tests: start the browser with a
// fresh profile, open tabs, navigate and evaluate JavaScript. It speaks the
// protocol's JSON commands over a WebSocket; events are not subscribed to.
//
// Conn is the protocol connection; Browser starts and stops a Firefox
// process and owns one Conn; Tab is one top-level browsing context.
package bidi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/coder/websocket"
)

// maxMessageBytes bounds one message from the browser (script results are
// small; a screenshot would not be).
const maxMessageBytes = 16 << 20

// Error is an error response to a command.
type Error struct {
	Method  string // the command
	Code    string // e.g. "no such frame", "invalid argument"
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("bidi %s: %s: %s", e.Method, e.Code, e.Message)
}

// ErrClosed is returned by commands on a closed connection.
var ErrClosed = errors.New("bidi: connection closed")

// response is one reply to a command, as the browser sends it.
type response struct {
	Type    string          `json:"type"` // "success", "error" or "event"
	ID      *int64          `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   string          `json:"error"`
	Message string          `json:"message"`
}

// Conn is a WebDriver BiDi connection. Its methods may be called from
// several goroutines; each command waits for its own response.
type Conn struct {
	ws   *websocket.Conn
	done chan struct{} // closed when the read loop ends

	mu      sync.Mutex
	nextID  int64                    // guarded by mu
	pending map[int64]chan *response // guarded by mu; nil once the read loop ended
	err     error                    // guarded by mu; why the read loop ended
}

// Dial connects to a BiDi endpoint such as ws://127.0.0.1:PORT/session.
func Dial(ctx context.Context, url string) (*Conn, error) {
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return nil, fmt.Errorf("bidi: dial %s: %w", url, err)
	}
	ws.SetReadLimit(maxMessageBytes)
	c := &Conn{ws: ws, done: make(chan struct{}), pending: make(map[int64]chan *response)}
	go c.readLoop()
	return c, nil
}

// readLoop hands each response to the command waiting for it and drops
// events. It ends when the connection fails or is closed.
func (c *Conn) readLoop() {
	defer close(c.done)
	var err error
	for {
		var data []byte
		_, data, err = c.ws.Read(context.Background())
		if err != nil {
			break
		}
		var r response
		if json.Unmarshal(data, &r) != nil || r.ID == nil {
			continue // an event, or nothing we asked for
		}
		c.mu.Lock()
		ch := c.pending[*r.ID]
		delete(c.pending, *r.ID)
		c.mu.Unlock()
		if ch != nil {
			ch <- &r // buffered: never blocks
		}
	}
	c.mu.Lock()
	c.err = fmt.Errorf("%w: %v", ErrClosed, err)
	for _, ch := range c.pending {
		close(ch)
	}
	c.pending = nil
	c.mu.Unlock()
}

// Call sends a command and waits for its response, decoding the result into
// result unless that is nil. A command the browser refuses returns *Error.
// When ctx ends first, Call returns ctx's error; the response, if it comes,
// is dropped.
func (c *Conn) Call(ctx context.Context, method string, params, result any) error {
	if params == nil {
		params = struct{}{}
	}
	ch := make(chan *response, 1)
	c.mu.Lock()
	if c.pending == nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		if c.pending != nil {
			delete(c.pending, id)
		}
		c.mu.Unlock()
	}

	msg, err := json.Marshal(struct {
		ID     int64  `json:"id"`
		Method string `json:"method"`
		Params any    `json:"params"`
	}{id, method, params})
	if err != nil {
		forget()
		return fmt.Errorf("bidi %s: encoding parameters: %w", method, err)
	}
	if err := c.ws.Write(ctx, websocket.MessageText, msg); err != nil {
		forget()
		return fmt.Errorf("bidi %s: send: %w", method, err)
	}
	select {
	case r, ok := <-ch:
		if !ok {
			c.mu.Lock()
			err := c.err
			c.mu.Unlock()
			return fmt.Errorf("bidi %s: %w", method, err)
		}
		if r.Type == "error" {
			return &Error{Method: method, Code: r.Error, Message: r.Message}
		}
		if result == nil {
			return nil
		}
		if err := json.Unmarshal(r.Result, result); err != nil {
			return fmt.Errorf("bidi %s: decoding result: %w", method, err)
		}
		return nil
	case <-ctx.Done():
		forget()
		return fmt.Errorf("bidi %s: %w", method, ctx.Err())
	}
}

// Close closes the connection and waits for its reader to end. Commands
// still waiting return ErrClosed.
func (c *Conn) Close() error {
	err := c.ws.CloseNow()
	<-c.done
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("bidi: close: %w", err)
	}
	return nil
}
