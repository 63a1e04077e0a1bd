package turn

import (
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"
)

// localRefresh is how often the machine's interface addresses are read
// again, for addresses that come and go (DHCP, a second interface).
const localRefresh = 10 * time.Second

// localAddrs is the set of the machine's interface addresses, read at
// start-up and every localRefresh: the relay reaches none of their ports
// but the SFU's media ports (Policy.PortAllowed). Safe for concurrent use;
// has is called per relayed packet and takes no lock.
type localAddrs struct {
	set  atomic.Pointer[map[netip.Addr]struct{}]
	read func() ([]net.Addr, error) // net.InterfaceAddrs; tests replace it
}

func newLocalAddrs() (*localAddrs, error) {
	l := &localAddrs{read: net.InterfaceAddrs}
	if err := l.refresh(); err != nil {
		return nil, err
	}
	return l, nil
}

// refresh reads the interface addresses; on an error the last set stays.
func (l *localAddrs) refresh() error {
	addrs, err := l.read()
	if err != nil {
		return fmt.Errorf("turn: read interface addresses: %w", err)
	}
	set := make(map[netip.Addr]struct{}, len(addrs))
	for _, a := range addrs {
		var ip net.IP
		switch a := a.(type) {
		case *net.IPNet:
			ip = a.IP
		case *net.IPAddr:
			ip = a.IP
		}
		if ap, ok := netip.AddrFromSlice(ip); ok {
			set[embeddedV4(ap)] = struct{}{}
		}
	}
	l.set.Store(&set)
	return nil
}

// has reports whether ip (normalised by embeddedV4) is an interface
// address.
func (l *localAddrs) has(ip netip.Addr) bool {
	_, ok := (*l.set.Load())[ip]
	return ok
}

// run refreshes the set every localRefresh until stop is closed.
func (l *localAddrs) run(stop <-chan struct{}, failed func(error)) {
	t := time.NewTicker(localRefresh)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if err := l.refresh(); err != nil {
				failed(err)
			}
		}
	}
}
