package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Bus carries messages between nodes over Redis pub/sub: each node listens
// on its own channel, hc:bus:<node id>. Delivery is at most once and only to
// a node listening at the time; callers that need an answer use timeouts.
// Messages are opaque bytes.
type Bus struct {
	c redis.UniversalClient
}

// NewBus returns a bus over c. The caller keeps ownership of c.
func NewBus(c redis.UniversalClient) *Bus { return &Bus{c: c} }

// MaxMessage is the largest message Send accepts (SDP included).
const MaxMessage = 256 << 10

func busChannel(node string) string { return "hc:bus:" + node }

// Send publishes msg to node. It reports whether a listener received it
// (false: the node is not listening, as when it has died).
func (b *Bus) Send(ctx context.Context, node string, msg []byte) (bool, error) {
	if err := ValidateID(node); err != nil {
		return false, fmt.Errorf("cluster: send: %w", err)
	}
	if len(msg) > MaxMessage {
		return false, fmt.Errorf("cluster: send: message of %d bytes (at most %d)", len(msg), MaxMessage)
	}
	n, err := b.c.Publish(ctx, busChannel(node), msg).Result()
	if err != nil {
		return false, fmt.Errorf("cluster: send to %s: %w", node, err)
	}
	return n > 0, nil
}

// Listen calls f with each message sent to node, in order, until ctx ends.
// ready, if not nil, is closed once the subscription is in place. f runs on
// Listen's goroutine and must not block for long. A lost connection is
// re-established by the client; messages sent meanwhile are lost.
func (b *Bus) Listen(ctx context.Context, node string, ready chan<- struct{}, f func([]byte)) error {
	if err := ValidateID(node); err != nil {
		return fmt.Errorf("cluster: listen: %w", err)
	}
	sub := b.c.Subscribe(ctx, busChannel(node))
	defer sub.Close()
	// Wait for the subscription to be confirmed, so that a Send after
	// ready reaches us.
	if _, err := sub.Receive(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("cluster: subscribe: %w", err)
	}
	if ready != nil {
		close(ready)
	}
	ch := sub.Channel(redis.WithChannelSize(1024))
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-ch:
			if !ok {
				return errors.New("cluster: subscription closed")
			}
			f([]byte(m.Payload))
		}
	}
}
