// Package turn is HelpCaster's embedded TURN server (on pion/turn) and the
// time-limited credentials its clients use, in the TURN REST style that
// coturn's use-auth-secret accepts: the username is "<expiry unix
// seconds>:<id>" and the password is base64(HMAC-SHA1(secret, username)).
// The same Credentials mint passwords for an external TURN service that
// shares the secret.
package turn

import (
	"crypto/hmac"
	"crypto/sha1" // HMAC-SHA1 is what the TURN REST convention (and coturn) specify
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Limits on credentials.
const (
	MinSecretLen = 16             // shortest shared secret, in bytes
	MaxTTL       = 24 * time.Hour // longest credential lifetime
	maxIDLen     = 128
)

// Errors from Credentials.Check.
var (
	ErrMalformed = errors.New("turn: username is not <expiry>:<id>")
	ErrExpired   = errors.New("turn: credentials expired")
)

// Credentials mints and checks TURN REST credentials with one shared
// secret. Safe for concurrent use.
type Credentials struct {
	secret []byte
	ttl    time.Duration
}

// NewCredentials returns credentials valid for ttl (0 < ttl <= MaxTTL)
// signed with secret (at least MinSecretLen bytes).
func NewCredentials(secret []byte, ttl time.Duration) (*Credentials, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("turn: shared secret is %d bytes; it must be at least %d", len(secret), MinSecretLen)
	}
	if ttl <= 0 || ttl > MaxTTL {
		return nil, fmt.Errorf("turn: credential lifetime %v is out of range (more than 0, at most %v)", ttl, MaxTTL)
	}
	return &Credentials{secret: append([]byte(nil), secret...), ttl: ttl}, nil
}

// TTL is how long minted credentials are valid.
func (c *Credentials) TTL() time.Duration { return c.ttl }

// Mint returns a username and password for id, valid from now for the TTL.
// id should carry nothing personal: TURN servers log usernames.
func (c *Credentials) Mint(id string, now time.Time) (username, password string) {
	username = strconv.FormatInt(now.Add(c.ttl).Unix(), 10) + ":" + id
	return username, c.Password(username)
}

// Password is the password that goes with username.
func (c *Credentials) Password(username string) string {
	m := hmac.New(sha1.New, c.secret)
	m.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Check parses a username and reports whether it is still valid at now; it
// returns the id. The password is checked by the TURN protocol itself
// (MESSAGE-INTEGRITY with the key from Password).
func (c *Credentials) Check(username string, now time.Time) (id string, err error) {
	exp, id, ok := strings.Cut(username, ":")
	if !ok || id == "" || len(id) > maxIDLen {
		return "", ErrMalformed
	}
	secs, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || secs <= 0 {
		return "", ErrMalformed
	}
	if now.Unix() >= secs {
		return "", ErrExpired
	}
	if secs-now.Unix() > int64(MaxTTL/time.Second)+60 {
		return "", ErrMalformed // minted by no one we know: too far out
	}
	return id, nil
}
