package turn

import (
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
