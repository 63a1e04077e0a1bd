//go:build !linux

package wire

import (
	"net/netip"
	"time"
)

// Elsewhere than Linux the socket is read one datagram at a time through
// Go's net package; routing works the same.
type batchReader struct {
	buf  []byte
	d    []byte
	from netip.AddrPort
	now  time.Time
	has  bool
}

func (b *batchReader) init() { b.buf = make([]byte, bufSize) }

func (b *batchReader) next() ([]byte, netip.AddrPort, time.Time, bool) {
	if !b.has {
		return nil, netip.AddrPort{}, time.Time{}, false
	}
	b.has = false
	return b.d, b.from, b.now, true
}

func (s *Socket) fill() error {
	n, from, err := s.conn.ReadFromUDPAddrPort(s.rd.buf)
	if err != nil {
		return err
	}
	s.rd.d, s.rd.from, s.rd.now, s.rd.has = s.rd.buf[:n], netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), time.Now(), true
	return nil
}

func (s *Socket) send(p []byte, to netip.AddrPort, _ bool) error {
	_, err := s.conn.WriteToUDPAddrPort(p, to)
	return err
}

func socketFamily(int) (bool, error) { return false, nil }
