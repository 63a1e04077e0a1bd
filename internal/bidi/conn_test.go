package bidi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// peer is a scripted BiDi remote end on a loopback WebSocket: "echo"
// answers with its parameters, "fail" with an error, "pair" waits for a
// second "pair" and answers the two in reverse order, "never" is not
// answered, and "hangup" closes the connection. An event precedes every
// answer. Each "never" received is reported on nevers.
func peer(t *testing.T, nevers chan<- struct{}) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ctx := r.Context()
		reply := func(v any) bool {
			ev, _ := json.Marshal(map[string]any{"type": "event", "method": "log.entryAdded", "params": map[string]any{}})
			data, _ := json.Marshal(v)
			return ws.Write(ctx, websocket.MessageText, ev) == nil && ws.Write(ctx, websocket.MessageText, data) == nil
		}
		var held []int64
		for {
			_, data, err := ws.Read(ctx)
			if err != nil {
				return
			}
			var cmd struct {
				ID     int64           `json:"id"`
				Method string          `json:"method"`
				Params json.RawMessage `json:"params"`
			}
			if err := json.Unmarshal(data, &cmd); err != nil {
				return
			}
			switch cmd.Method {
			case "echo":
				if !reply(map[string]any{"type": "success", "id": cmd.ID, "result": cmd.Params}) {
					return
				}
			case "fail":
				if !reply(map[string]any{"type": "error", "id": cmd.ID, "error": "invalid argument", "message": "no such thing"}) {
					return
				}
			case "pair":
				held = append(held, cmd.ID)
				if len(held) == 2 {
					for _, id := range []int64{held[1], held[0]} {
						if !reply(map[string]any{"type": "success", "id": id, "result": map[string]any{"id": id}}) {
							return
						}
					}
					held = nil
				}
			case "never":
				nevers <- struct{}{}
			case "hangup":
				ws.Close(websocket.StatusNormalClosure, "bye")
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

func dialPeer(t *testing.T) (*Conn, <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nevers := make(chan struct{}, 10)
	c, err := Dial(ctx, peer(t, nevers))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, nevers
}

func TestCallMatchesResponses(t *testing.T) {
	c, _ := dialPeer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	var res struct{ N int }
	if err := c.Call(ctx, "echo", map[string]int{"n": 7}, &res); err != nil || res.N != 7 {
		t.Fatalf("echo: %+v, %v", res, err)
	}
	if err := c.Call(ctx, "echo", nil, nil); err != nil {
		t.Fatalf("echo without parameters or result: %v", err)
	}

	var bidiErr *Error
	if err := c.Call(ctx, "fail", nil, nil); !errors.As(err, &bidiErr) || bidiErr.Code != "invalid argument" || bidiErr.Method != "fail" {
		t.Fatalf("fail: err = %v, want an *Error with the code", err)
	}

	// Two commands answered in reverse order each get their own answer.
	var wg sync.WaitGroup
	ids := make([]int64, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() {
			var r struct{ ID int64 }
			errs[i] = c.Call(ctx, "pair", nil, &r)
			ids[i] = r.ID
		})
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil || ids[0] == ids[1] || ids[0] == 0 || ids[1] == 0 {
		t.Fatalf("pair: ids %v, errors %v", ids, errs)
	}
}

func TestCallEndsWithContext(t *testing.T) {
	c, _ := dialPeer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := c.Call(ctx, "never", nil, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("never: err = %v, want the deadline", err)
	}
	// The connection still works.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if err := c.Call(ctx2, "echo", nil, nil); err != nil {
		t.Fatalf("echo after a timed-out call: %v", err)
	}
}

func TestCallsEndWhenConnectionDrops(t *testing.T) {
	c, nevers := dialPeer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	waiting := make(chan error, 1)
	go func() { waiting <- c.Call(ctx, "never", nil, nil) }()
	<-nevers // the peer has it: it is waiting when the peer hangs up
	if err := c.Call(ctx, "hangup", nil, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("hangup: err = %v, want ErrClosed", err)
	}
	if err := <-waiting; !errors.Is(err, ErrClosed) {
		t.Errorf("a call waiting when the connection dropped: err = %v, want ErrClosed", err)
	}
	if err := c.Call(ctx, "echo", nil, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("a call after the connection dropped: err = %v, want ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("close after the peer hung up: %v", err)
	}
}
