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
//
// A permission names an address, not a port, so the relay checks ports
// itself: at an address of the node (any of its interface addresses,
// loopback, the SFU's and the relay's announced addresses), data goes only
// to the SFU's media ports. The TURN server's own ports, its relays, the
// signaling port and whatever else runs on the machine are never reached
// through a relay, whether the address is public, private or allow-listed.

// Reasons a peer address is refused; also the values of the metrics'
// reason label.
const (
	ReasonUnspecified   = "unspecified"
	ReasonLoopback      = "loopback"
	ReasonPrivate       = "private"
	ReasonCGNAT         = "cgnat"
	ReasonLinkLocal     = "link_local"
	ReasonMulticast     = "multicast"
	ReasonReserved      = "reserved"
	ReasonDocumentation = "documentation"
	// ReasonTunnel: 6to4 and Teredo addresses, whose IPv4 end the server
	// cannot vet.
	ReasonTunnel = "tunnel"
	// ReasonNodePort: data to an address of the node on a port that is not
	// the SFU's media port (counted per packet, dropped).
	ReasonNodePort = "node_port"
)

// denied are the ranges refused by default, with the reason; the first
// match decides.
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
	{netip.MustParsePrefix("192.0.2.0/24"), ReasonDocumentation},
	{netip.MustParsePrefix("192.88.99.0/24"), ReasonTunnel}, // 6to4 relay anycast
	{netip.MustParsePrefix("192.168.0.0/16"), ReasonPrivate},
	{netip.MustParsePrefix("198.18.0.0/15"), ReasonReserved},
	{netip.MustParsePrefix("198.51.100.0/24"), ReasonDocumentation},
	{netip.MustParsePrefix("203.0.113.0/24"), ReasonDocumentation},
	{netip.MustParsePrefix("224.0.0.0/4"), ReasonMulticast},
	{netip.MustParsePrefix("240.0.0.0/4"), ReasonReserved}, // includes 255.255.255.255
	{netip.MustParsePrefix("::/128"), ReasonUnspecified},
	{netip.MustParsePrefix("::1/128"), ReasonLoopback},
	{netip.MustParsePrefix("64:ff9b:1::/48"), ReasonPrivate}, // local-use NAT64
	{netip.MustParsePrefix("100::/64"), ReasonReserved},      // discard-only
	{netip.MustParsePrefix("2001::/32"), ReasonTunnel},       // Teredo
	{netip.MustParsePrefix("2001:db8::/32"), ReasonDocumentation},
	{netip.MustParsePrefix("2001::/23"), ReasonReserved}, // IETF protocol assignments (benchmarking, ORCHID, ...)
	{netip.MustParsePrefix("2002::/16"), ReasonTunnel},   // 6to4
	{netip.MustParsePrefix("3fff::/20"), ReasonDocumentation},
	{netip.MustParsePrefix("5f00::/16"), ReasonReserved}, // SRv6 SIDs
	{netip.MustParsePrefix("fc00::/7"), ReasonPrivate},   // unique local
	{netip.MustParsePrefix("fe80::/10"), ReasonLinkLocal},
	{netip.MustParsePrefix("fec0::/10"), ReasonPrivate}, // site local, deprecated
	{netip.MustParsePrefix("ff00::/8"), ReasonMulticast},
}

// policyReasons are the reasons Check can return, for metrics made at
// start-up.
func policyReasons() []string {
	var out []string
	for _, d := range denied {
		if !slices.Contains(out, d.reason) {
			out = append(out, d.reason)
		}
	}
	return out
}

// Policy decides which peer addresses a client may relay to, and which
// ports at the node's own addresses. The zero Policy refuses the ranges
// above, allows everything else, and reaches no port at the node's
// addresses. Read-only after construction.
type Policy struct {
	// Allow lists prefixes relayed to even though a denied range holds them.
	Allow []netip.Prefix
	// Always lists addresses always allowed (the SFU's media addresses).
	// They are addresses of the node.
	Always []netip.Addr
	// Node lists the node's other addresses that are not on an interface of
	// the machine (the public address of a node behind 1:1 NAT, the relay
	// address). Interface addresses and loopback are the node's anyway.
	Node []netip.Addr
	// MediaPorts are the only ports relayed to at an address of the node:
	// the SFU's UDP media ports (relays are UDP).
	MediaPorts []uint16
}

// Check returns "" when a permission for ip may be granted, else the reason
// it may not. IPv4-mapped, IPv4-compatible, IPv4-translated and NAT64
// (64:ff9b::/96) IPv6 addresses are judged by the IPv4 address they carry.
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

// isNode reports whether ip is one of the node's addresses the policy
// knows of (loopback, unspecified, Always, Node); interface addresses are
// the server's to add (localAddrs). ip is normalised by embeddedV4.
func (p *Policy) isNode(ip netip.Addr) bool {
	if ip.IsLoopback() || ip.IsUnspecified() {
		return true
	}
	for _, list := range [][]netip.Addr{p.Always, p.Node} {
		for _, a := range list {
			if embeddedV4(a) == ip {
				return true
			}
		}
	}
	return false
}

// PortAllowed reports whether data may be relayed to port at ip once the
// client holds a permission for ip; local reports the machine's interface
// addresses (nil: none). At an address of the node only MediaPorts are.
func (p *Policy) PortAllowed(ip netip.Addr, port uint16, local func(netip.Addr) bool) bool {
	ip = embeddedV4(ip)
	if !p.isNode(ip) && (local == nil || !local(ip)) {
		return true
	}
	return slices.Contains(p.MediaPorts, port)
}

var (
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
	translated = netip.MustParsePrefix("::ffff:0:0:0/96") // IPv4-translated (SIIT)
)

// embeddedV4 returns the IPv4 address an IPv6 address stands for, if any,
// without zone.
func embeddedV4(ip netip.Addr) netip.Addr {
	ip = ip.WithZone("")
	if ip.Is4In6() {
		return ip.Unmap()
	}
	if !ip.Is6() {
		return ip
	}
	b := ip.As16()
	v4 := netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	switch {
	case nat64.Contains(ip), translated.Contains(ip):
		return v4
	case [12]byte(b[:12]) == [12]byte{} && (b[12] != 0 || b[13] != 0):
		// IPv4-compatible (::a.b.c.d), deprecated but still parsed by some
		// stacks; :: and ::1 themselves are handled as IPv6.
		return v4
	}
	return ip
}
