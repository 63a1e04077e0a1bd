package node

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/helpcaster/helpcaster/internal/redistest"
	"github.com/helpcaster/helpcaster/signaling/queue"
)

func TestOpenStore(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	s, closeStore, err := openStore("", log)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*queue.Memory); !ok {
		t.Errorf("no Redis URL: store %T, want memory", s)
	}
	closeStore()

	rs := redistest.Start(t)
	s, closeStore, err = openStore(rs.URL(), log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enqueue(context.Background(), queue.Entry{Org: "o", Queue: "q", Session: "s"}, 0); err != nil {
		t.Errorf("enqueue into Redis: %v", err)
	}
	closeStore()

	if _, _, err := openStore("redis://u:secret@[bad", log); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("bad URL: %v (want an error that does not repeat the password)", err)
	}

	// A Redis that does not answer yet is only a warning.
	rs.Stop()
	logs.Reset()
	s, closeStore, err = openStore(rs.URL(), log)
	if err != nil || s == nil {
		t.Fatalf("Redis down at start: %v", err)
	}
	defer closeStore()
	if !strings.Contains(logs.String(), "does not answer yet") {
		t.Errorf("no warning for a Redis that does not answer: %q", logs.String())
	}
}
