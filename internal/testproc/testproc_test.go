package testproc

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestFreePortAvoids(t *testing.T) {
	p, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	// Hold p, so that a port avoided cannot come back by chance either.
	for range 20 {
		q, err := FreePort(p)
		if err != nil {
			t.Fatal(err)
		}
		if q == p {
			t.Fatalf("FreePort(%d) returned %d", p, q)
		}
	}
}

// TestHoldPort: while held, a connection to the port is closed at once
// and nobody else can listen on it; released, the port is free again.
func TestHoldPort(t *testing.T) {
	p, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	h := HoldPort(addr)
	if h == nil {
		t.Fatal("could not hold a free port")
	}
	if l, err := net.Listen("tcp", addr); err == nil {
		l.Close()
		t.Fatal("another listener took a held port")
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil || n != 0 || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a held port answered: %d bytes, %v; want the connection closed", n, err)
	}
	c.Close()
	h.Release()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the port is not free after Release: %v", err)
	}
	l.Close()
	(*PortHold)(nil).Release() // a hold that could not be taken
}

func TestTail(t *testing.T) {
	dir := t.TempDir()
	long := filepath.Join(dir, "long.log")
	if err := os.WriteFile(long, []byte(strings.Repeat("x", 5000)+"END\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := Tail(long); len(got) > 2000 || !strings.HasSuffix(got, "END") {
		t.Fatalf("Tail of a long log: %d bytes ending %q", len(got), got[max(0, len(got)-5):])
	}
	empty := filepath.Join(dir, "empty.log")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := Tail(empty); got != "(empty log)" {
		t.Fatalf("Tail of an empty log = %q", got)
	}
	if got := Tail(filepath.Join(dir, "missing")); !strings.HasPrefix(got, "(no log: ") {
		t.Fatalf("Tail of a missing log = %q", got)
	}
}

func TestRetry(t *testing.T) {
	calls := 0
	err := Retry(5*time.Second, func() error {
		calls++
		if calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("Retry: %v after %d calls, want success on the third", err, calls)
	}
	want := errors.New("never")
	if err := Retry(0, func() error { return want }); err != want {
		t.Fatalf("Retry that never succeeds = %v, want its last error", err)
	}
}
