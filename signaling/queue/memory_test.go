package queue_test

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/helpcaster/helpcaster/signaling/queue"
	"github.com/helpcaster/helpcaster/signaling/queue/queuetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestMemory(t *testing.T) {
	queuetest.Run(t, func(t *testing.T, now func() time.Time) queue.Store {
		return queue.NewMemory(now)
	})
}

func TestMemoryShared(t *testing.T) {
	queuetest.RunShared(t, func(t *testing.T, n int) []queue.Store {
		m := queue.NewMemory(nil)
		out := make([]queue.Store, n)
		for i := range out {
			out[i] = m
		}
		return out
	})
}

// A nil clock means the wall clock.
func TestMemoryNilClock(t *testing.T) {
	m := queue.NewMemory(nil)
	before := time.Now()
	if _, err := m.Enqueue(t.Context(), queue.Entry{Org: "o", Queue: "q", Session: "s"}, 0); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	if err := m.SetAgent(t.Context(), queue.Agent{Org: "o", Session: "a", Queues: []string{"q"}}, true); err != nil {
		t.Fatal(err)
	}
	a, ok, err := m.Assign(t.Context(), "o", "q", nil)
	if err != nil || !ok {
		t.Fatalf("Assign = %v, %v", ok, err)
	}
	if a.Customer.Since.Before(before) || a.Customer.Since.After(after) {
		t.Fatalf("Since = %v, want between %v and %v", a.Customer.Since, before, after)
	}
}
