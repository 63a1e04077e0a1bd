package turn

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCredentials(t *testing.T) {
	secret := []byte("0123456789abcdef0123")
	c, err := NewCredentials(secret, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_900_000_000, 0)
	user, pass := c.Mint("s-1", now)
	if user != "1900000600:s-1" {
		t.Fatalf("username %q", user)
	}
	// The TURN REST convention, computed independently.
	m := hmac.New(sha1.New, secret)
	m.Write([]byte(user))
	if want := base64.StdEncoding.EncodeToString(m.Sum(nil)); pass != want {
		t.Fatalf("password %q, want %q", pass, want)
	}
	if id, err := c.Check(user, now.Add(599*time.Second)); err != nil || id != "s-1" {
		t.Fatalf("Check before expiry = %q, %v", id, err)
	}
	if _, err := c.Check(user, now.Add(600*time.Second)); !errors.Is(err, ErrExpired) {
		t.Fatalf("Check at expiry: %v, want ErrExpired", err)
	}
	for _, bad := range []string{"", "s-1", "abc:s-1", "-5:s-1", "1900000600:", "1900000600:" + strings.Repeat("x", 129), "9999999999:s-1"} {
		if _, err := c.Check(bad, now); !errors.Is(err, ErrMalformed) {
			t.Errorf("Check(%q): %v, want ErrMalformed", bad, err)
		}
	}
	if _, err := NewCredentials([]byte("short"), time.Minute); err == nil {
		t.Error("short secret accepted")
	}
	for _, ttl := range []time.Duration{0, -time.Second, 25 * time.Hour} {
		if _, err := NewCredentials(secret, ttl); err == nil {
			t.Errorf("ttl %v accepted", ttl)
		}
	}
}
