package turn

import (
	"net/netip"
	"slices"
)

// Relay policy. A TURN server on the internet relays for anyone holding
// credentials, so it must not become a way into the operator's network: by
// default it refuses permissions (and channel binds) towards addresses that
// are not public, whatever the client asks. An allow-list reopens chosen
// prefixes (tests allow loopback; a deployment may allow its SFU's private
// address), and the SFU's own media address is always allowed.

// Reasons a peer address is refused; also the values of the metrics'
// reason label.
const (
	ReasonUnspecified = "unspecified"
	ReasonLoopback    = "loopback"
	ReasonPrivate     = "private"
	ReasonCGNAT       = "cgnat"
	ReasonLinkLocal   = "link_local"
	ReasonMulticast   = "multicast"
	ReasonReserved    = "reserved"
	// ReasonSFUPort: data to the SFU's address on a port that is not its
	// media port (counted per packet, dropped).
	ReasonSFUPort = "sfu_port"
)

// denied are the ranges refused by default, with the reason.
var denied = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), ReasonUnspecified},
	{netip.MustParsePrefix("10.0.0.0/8"), ReasonPrivate},
	{netip.MustParsePrefix("100.64.0.0/10"), ReasonCGNAT},
	{netip.MustParsePrefix("127.0.0.0/8"), ReasonLoopback},
	{netip.MustParsePrefix("169.254.0.0/16"), ReasonLinkLocal}, // includes 169.254.169.254, cloud metadata
	{netip.MustParsePrefix("172.16.0.0/12"), ReasonPrivate},
	{netip.MustParsePrefix("192.0.0.0/24"), ReasonReserved},
	{netip.MustParsePrefix("192.168.0.0/16"), ReasonPrivate},
	{netip.MustParsePrefix("198.18.0.0/15"), ReasonReserved},
	{netip.MustParsePrefix("224.0.0.0/4"), ReasonMulticast},
	{netip.MustParsePrefix("240.0.0.0/4"), ReasonReserved}, // includes 255.255.255.255
	{netip.MustParsePrefix("::/128"), ReasonUnspecified},
	{netip.MustParsePrefix("::1/128"), ReasonLoopback},
	{netip.MustParsePrefix("fc00::/7"), ReasonPrivate}, // unique local
	{netip.MustParsePrefix("fe80::/10"), ReasonLinkLocal},
	{netip.MustParsePrefix("fec0::/10"), ReasonPrivate}, // site local, deprecated
	{netip.MustParsePrefix("ff00::/8"), ReasonMulticast},
	{netip.MustParsePrefix("64:ff9b:1::/48"), ReasonPrivate}, // local-use NAT64
}

// Policy decides which peer addresses a client may relay to. The zero
// Policy refuses the ranges above and allows everything else. Read-only
// after construction.
type Policy struct {
	// Allow lists prefixes relayed to even though a denied range holds them.
	Allow []netip.Prefix
	// Always lists addresses always allowed (the SFU's media addresses).
	Always []netip.Addr
	// AlwaysPorts, when set, are the only ports relayed to at an address
	// that only Always allows (the SFU's media ports): permissions are per
	// address, and the SFU's host may run other services.
	AlwaysPorts []uint16
}

// Check returns "" when ip may be relayed to, else the reason it may not.
// IPv4-mapped and IPv4-compatible IPv6 addresses, and NAT64 addresses
// (64:ff9b::/96), are judged by the IPv4 address they carry.
func (p *Policy) Check(ip netip.Addr) string {
	ip = embeddedV4(ip)
	if !ip.IsValid() {
		return ReasonUnspecified
	}
	for _, a := range p.Always {
		if embeddedV4(a) == ip {
			return ""
		}
	}
	for _, a := range p.Allow {
		if a.Contains(ip) {
			return ""
		}
	}
	for _, d := range denied {
		if d.prefix.Contains(ip) {
			return d.reason
		}
	}
	return ""
}

// PortAllowed reports whether data may be relayed to port at ip once the
// client has a permission for ip: at an address allowed only because it is
// in Always, only AlwaysPorts are.
func (p *Policy) PortAllowed(ip netip.Addr, port uint16) bool {
	if len(p.AlwaysPorts) == 0 {
		return true
	}
	ip = embeddedV4(ip)
	if !slices.ContainsFunc(p.Always, func(a netip.Addr) bool { return embeddedV4(a) == ip }) {
		return true
	}
	open := Policy{Allow: p.Allow}
	if open.Check(ip) == "" {
		return true // public, or allow-listed for every port
	}
	return slices.Contains(p.AlwaysPorts, port)
}

var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// embeddedV4 returns the IPv4 address an IPv6 address stands for, if any.
func embeddedV4(ip netip.Addr) netip.Addr {
	ip = ip.WithZone("")
	if ip.Is4In6() {
		return ip.Unmap()
	}
	if ip.Is6() && nat64.Contains(ip) {
		b := ip.As16()
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	if ip.Is6() {
		b := ip.As16()
		// IPv4-compatible (::a.b.c.d), deprecated but still parsed by some
		// stacks; :: and ::1 themselves are handled as IPv6.
		if [12]byte(b[:12]) == [12]byte{} && (b[12] != 0 || b[13] != 0) {
			return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
		}
	}
	return ip
}
