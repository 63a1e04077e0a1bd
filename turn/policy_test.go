package turn

import (
	"net/netip"
	"testing"
)

func TestPolicy(t *testing.T) {
	var p Policy
	for addr, want := range map[string]string{
		"8.8.8.8":              "",
		"203.0.113.7":          "",
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

func TestPortAllowed(t *testing.T) {
	p := Policy{
		Allow:       []netip.Prefix{netip.MustParsePrefix("192.168.7.0/24")},
		Always:      []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.168.7.5")},
		AlwaysPorts: []uint16{7881},
	}
	for _, tc := range []struct {
		addr string
		port uint16
		want bool
	}{
		{"127.0.0.1", 7881, true},  // the SFU's media port
		{"127.0.0.1", 6379, false}, // another service on the SFU's host
		{"127.0.0.1", 3478, false}, // the TURN server itself
		{"::ffff:127.0.0.1", 22, false},
		{"192.168.7.5", 22, true}, // allow-listed for every port
		{"8.8.8.8", 53, true},     // public
	} {
		if got := p.PortAllowed(netip.MustParseAddr(tc.addr), tc.port); got != tc.want {
			t.Errorf("PortAllowed(%s, %d) = %v, want %v", tc.addr, tc.port, got, tc.want)
		}
	}
	if !(&Policy{Always: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}).PortAllowed(netip.MustParseAddr("127.0.0.1"), 1) {
		t.Error("without AlwaysPorts every port of an Always address is allowed")
	}
}
