//go:build linux

package turn

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/helpcaster/helpcaster/internal/rawudp"
)

// TestPumpSockets covers the pump's sockets on their own: datagrams not
// relayed reach ReadFrom with the sender's address, writes arrive, a full
// queue drops instead of blocking the pump, and Close ends a blocked read.
func TestPumpSockets(t *testing.T) {
	s := &Server{log: slog.New(slog.DiscardHandler)}
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	s.metrics = m
	p, err := newPump(s)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	lis, err := p.listen("127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	other, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	// In: a datagram that is not ChannelData goes to ReadFrom.
	if _, err := other.WriteTo([]byte("hello"), lis.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, from, err := lis.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "hello" || from.String() != other.LocalAddr().String() {
		t.Fatalf("ReadFrom = %q from %v, %v; want hello from %v", buf[:n], from, err, other.LocalAddr())
	}
	// Out.
	if _, err := lis.WriteTo([]byte("back"), other.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	_ = other.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _, err := other.ReadFrom(buf); err != nil || string(buf[:n]) != "back" {
		t.Fatalf("peer read %q, %v", buf[:n], err)
	}
	// An IPv4 socket cannot send to IPv6.
	if err := lis.sendTo([]byte("x"), netip.MustParseAddrPort("[2001:db8::1]:9")); !errors.Is(err, rawudp.ErrFamily) {
		t.Errorf("send to IPv6 on an IPv4 socket: %v, want %v", err, rawudp.ErrFamily)
	}
	// Nobody reads: the queue fills and the rest is dropped, counted.
	for range cap(lis.inbox) + 10 {
		if _, err := other.WriteTo([]byte("flood"), lis.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(lis.inbox) < cap(lis.inbox) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if len(lis.inbox) != cap(lis.inbox) {
		t.Fatalf("queue holds %d of %d", len(lis.inbox), cap(lis.inbox))
	}
	for counterValue(t, reg, "helpcaster_turn_dropped_packets_total", "direction", "to_server") < 10 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := counterValue(t, reg, "helpcaster_turn_dropped_packets_total", "direction", "to_server"); got != 10 {
		t.Errorf("dropped to_server = %v, want 10", got)
	}
	// Close wakes a reader once the queue is gone.
	for len(lis.inbox) > 0 {
		<-lis.inbox
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := lis.ReadFrom(buf)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := lis.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("read after close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a blocked ReadFrom")
	}
	if err := lis.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	if _, err := lis.WriteTo([]byte("x"), other.LocalAddr()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after close: %v", err)
	}
}
