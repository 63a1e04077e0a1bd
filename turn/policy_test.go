package turn

import (
	"net/netip"
	"testing"
)

func TestPolicy(t *testing.T) {
	var p Policy
	for addr, want := range map[string]string{
		"8.8.8.8":              "",
		"1.1.1.1":              "",
		"2001:4860:4860::8888": "",
		"0.0.0.0":              ReasonUnspecified,
		"0.1.2.3":              ReasonUnspecified,
		"10.1.2.3":             ReasonPrivate,
		"172.16.0.1":           ReasonPrivate,
		"172.31.255.255":       ReasonPrivate,
		"192.168.1.1":          ReasonPrivate,
		"100.64.0.1":           ReasonCGNAT,
		"100.127.255.254":      ReasonCGNAT,
		"127.0.0.1":            ReasonLoopback,
		"127.5.5.5":            ReasonLoopback,
		"169.254.169.254":      ReasonLinkLocal,
		"224.0.0.1":            ReasonMulticast,
		"239.255.255.250":      ReasonMulticast,
		"255.255.255.255":      ReasonReserved,
		"::":                   ReasonUnspecified,
		"::1":                  ReasonLoopback,
		"fe80::1":              ReasonLinkLocal,
		"fc00::1":              ReasonPrivate,
		"fd12:3456::1":         ReasonPrivate,
		"ff02::1":              ReasonMulticast,
		"::ffff:10.0.0.1":      ReasonPrivate,   // IPv4-mapped
		"::ffff:127.0.0.1":     ReasonLoopback,  // IPv4-mapped
		"64:ff9b::a9fe:a9fe":   ReasonLinkLocal, // NAT64 of 169.254.169.254
		"::a00:1":              ReasonPrivate,   // IPv4-compatible 10.0.0.1
		"fe80::1%eth0":         ReasonLinkLocal,
		// IPv6 forms that reach IPv4 or go nowhere, and documentation.
		"2002:a00:1::1":            ReasonTunnel,        // 6to4 wrapping 10.0.0.1
		"2002:808:808::1":          ReasonTunnel,        // 6to4 wrapping a public address: still a tunnel
		"2001:0:4136:e378::1":      ReasonTunnel,        // Teredo
		"::ffff:0:a00:1":           ReasonPrivate,       // IPv4-translated 10.0.0.1
		"::ffff:0:7f00:1":          ReasonLoopback,      // IPv4-translated 127.0.0.1
		"::ffff:0:808:808":         "",                  // IPv4-translated 8.8.8.8
		"100::1":                   ReasonReserved,      // discard-only
		"2001:2::1":                ReasonReserved,      // benchmarking, in the IETF protocol assignments
		"2001:db8::1":              ReasonDocumentation, //
		"3fff::1":                  ReasonDocumentation,
		"3fff:fff:ffff::1":         ReasonDocumentation,
		"4000::1":                  "",
		"192.0.2.1":                ReasonDocumentation,
		"198.51.100.1":             ReasonDocumentation,
		"203.0.113.9":              ReasonDocumentation,
		"::ffff:203.0.113.9":       ReasonDocumentation,
		"64:ff9b::10.0.0.1":        ReasonPrivate,
		"2001:4860:4860::8844":     "",
		"2a00:1450:4001:80b::200e": "",
	} {
		if got := p.Check(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Check(%s) = %q, want %q", addr, got, want)
		}
	}
	if got := p.Check(netip.Addr{}); got != ReasonUnspecified {
		t.Errorf("Check(invalid) = %q", got)
	}

	allow := Policy{
		Allow:  []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		Always: []netip.Addr{netip.MustParseAddr("10.0.0.5")},
	}
	for addr, want := range map[string]string{
		"127.0.0.1":        "",
		"::1":              "",
		"::ffff:127.0.0.1": "",
		"10.0.0.5":         "", // the SFU's media address
		"::ffff:10.0.0.5":  "",
		"10.0.0.6":         ReasonPrivate,
		"192.168.0.1":      ReasonPrivate,
	} {
		if got := allow.Check(netip.MustParseAddr(addr)); got != want {
			t.Errorf("with allow-list: Check(%s) = %q, want %q", addr, got, want)
		}
	}
}

// TestPortAllowed: at every address of the node (loopback, the SFU's,
// the node's public and relay addresses, interface addresses), public,
// private or allow-listed, only the SFU's media port is reachable; other
// addresses on every port.
func TestPortAllowed(t *testing.T) {
	p := Policy{
		Allow:      []netip.Prefix{netip.MustParsePrefix("192.168.7.0/24"), netip.MustParsePrefix("127.0.0.0/8")},
		Always:     []netip.Addr{netip.MustParseAddr("192.168.7.5"), netip.MustParseAddr("8.8.4.4")},
		Node:       []netip.Addr{netip.MustParseAddr("1.1.1.1")},
		MediaPorts: []uint16{7881},
	}
	iface := netip.MustParseAddr("9.9.9.9")
	local := func(ip netip.Addr) bool { return ip == iface }
	for _, tc := range []struct {
		addr string
		port uint16
		want bool
	}{
		{"127.0.0.1", 7881, true},  // the SFU's media port
		{"127.0.0.1", 6379, false}, // another service on the SFU's host
		{"127.0.0.1", 3478, false}, // the TURN server itself
		{"127.3.2.1", 3478, false}, // all of loopback
		{"::1", 3478, false},
		{"::ffff:127.0.0.1", 22, false},
		{"0.0.0.0", 3478, false},
		{"192.168.7.5", 22, false},        // the SFU's private address, allow-listed too
		{"192.168.7.5", 7881, true},       //
		{"192.168.7.6", 22, true},         // allow-listed, not the node
		{"8.8.4.4", 3478, false},          // the SFU's public address (--media-public-ip)
		{"64:ff9b::808:404", 3478, false}, // the same through NAT64
		{"::ffff:0:808:404", 3478, false}, // and IPv4-translated
		{"8.8.4.4", 7881, true},
		{"1.1.1.1", 3478, false}, // the relay address
		{"9.9.9.9", 443, false},  // an interface address
		{"9.9.9.9", 7881, true},
		{"8.8.8.8", 53, true}, // public, not the node
	} {
		if got := p.PortAllowed(netip.MustParseAddr(tc.addr), tc.port, local); got != tc.want {
			t.Errorf("PortAllowed(%s, %d) = %v, want %v", tc.addr, tc.port, got, tc.want)
		}
	}
	if (&Policy{}).PortAllowed(netip.MustParseAddr("127.0.0.1"), 1, nil) {
		t.Error("without MediaPorts a port of the node is allowed")
	}
}
