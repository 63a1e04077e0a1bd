package turn

import (
	"bufio"
	"bytes"
	"net/netip"
	"testing"
	"time"
)

// FuzzCheck: any username is parsed without panicking; one that passes is
// "<expiry>:<id>" with a future expiry, and what Mint makes always passes.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{"1900000600:s-1", "", ":", "1:", "-1:x", "99999999999999999999:x", "1900000600:a:b"} {
		f.Add(s)
	}
	c, err := NewCredentials([]byte(testSecret), time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1_900_000_000, 0)
	f.Fuzz(func(t *testing.T, username string) {
		id, err := c.Check(username, now)
		if err == nil && (id == "" || len(id) > maxIDLen) {
			t.Fatalf("Check(%q) accepted id %q", username, id)
		}
		if len(username) <= maxIDLen && username != "" {
			u, _ := c.Mint(username, now)
			if got, err := c.Check(u, now); err != nil || got != username {
				t.Fatalf("minted %q: Check = %q, %v", u, got, err)
			}
		}
		// The policy never panics on an address made from the input.
		var p Policy
		if a, err := netip.ParseAddr(username); err == nil {
			_ = p.Check(a)
			_ = p.PortAllowed(a, 1, nil)
		}
	})
}

// FuzzScreenConn: whatever a TCP client sends, the frames screenConn hands
// pion are the bytes it sent, in order (no ChannelBind with valid
// credentials can come from the fuzzer), and it never panics.
func FuzzScreenConn(f *testing.F) {
	for _, s := range [][]byte{
		{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, // a Binding request
		{0x40, 0x00, 0x00, 0x03, 'a', 'b', 'c', 0},                                              // ChannelData, padded
		{0x00, 0x09, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, // an empty ChannelBind
		{0xff, 0xff}, {0x00}, {},
	} {
		f.Add(s)
	}
	creds, err := NewCredentials([]byte(testSecret), time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	s := &Server{cfg: Config{Credentials: creds, Realm: DefaultRealm}}
	f.Fuzz(func(t *testing.T, in []byte) {
		c := &screenConn{s: s, r: bufio.NewReader(bytes.NewReader(in))}
		var out []byte
		buf := make([]byte, 7) // short reads split frames too
		for {
			n, err := c.Read(buf)
			out = append(out, buf[:n]...)
			if err != nil {
				break
			}
		}
		if !bytes.HasPrefix(in, out) {
			t.Fatalf("read %x from %x", out, in)
		}
	})
}
