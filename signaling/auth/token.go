package auth

import (
	"cmp"
	"crypto/rand"
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/helpcaster/helpcaster/signaling/routing"
)

// Limits on token claims.
const (
	MaxTokenTTL  = 24 * time.Hour // longest lifetime Mint accepts
	MaxSubLen    = 128            // longest subject id, in bytes
	MaxNameRunes = 100            // longest display name, in characters
	MaxAttrs     = 32             // most routing attributes
	MaxAttrKey   = 64             // longest attribute key, in bytes
	MaxAttrValue = 256            // longest attribute value, in bytes
	// DefaultLeeway is the clock skew Verifier tolerates when Leeway is 0.
	DefaultLeeway = 30 * time.Second
	// DefaultMaxLifetime is the longest token lifetime Verifier accepts
	// when MaxLifetime is 0.
	DefaultMaxLifetime = 24 * time.Hour
	// LongestMaxLifetime is the largest Verifier.MaxLifetime a server may be
	// configured with.
	LongestMaxLifetime = 7 * 24 * time.Hour
)

// algorithm is the only signing algorithm minted and accepted.
const algorithm = "HS256"

// Claims are the claims of a HelpCaster token.
type Claims struct {
	jwt.RegisteredClaims                   // sub (subject id, opaque to us), exp, nbf, iat, jti
	Org                  string            `json:"org"`
	Role                 string            `json:"role"`            // protocol.RoleCustomer, RoleAgent or RoleSupervisor
	Name                 string            `json:"name,omitempty"`  // display name shown to the other side
	Queue                string            `json:"queue,omitempty"` // customer: queue to join; agent: queue to serve ("" = default queue)
	Attrs                map[string]string `json:"attrs,omitempty"` // routing attributes (language, region, tier, ...)
	// Agents only: skills with levels, matched against customers' attrs by
	// the queue's routing rules, and how many calls the agent takes at once
	// (0 means 1).
	Skills   routing.Skills `json:"skills,omitempty"`
	Capacity int            `json:"capacity,omitempty"`
	// Customers only: the customer agreed to have the call recorded (a
	// queue with record: consent records only these).
	RecordConsent bool `json:"record_consent,omitempty"`
}

// MaxCapacity is the most concurrent calls a token may give an agent.
const MaxCapacity = 8

// check validates the HelpCaster claims against org. Its messages never
// contain claim values, which may be personal data.
func (c *Claims) check(org *Org) error {
	if c.Role != protocol.RoleCustomer && c.Role != protocol.RoleAgent && c.Role != protocol.RoleSupervisor {
		return fmt.Errorf("role must be %q, %q or %q", protocol.RoleCustomer, protocol.RoleAgent, protocol.RoleSupervisor)
	}
	if c.Subject == "" {
		return errors.New("subject (sub) is empty")
	}
	if len(c.Subject) > MaxSubLen {
		return fmt.Errorf("subject (sub) is longer than %d bytes", MaxSubLen)
	}
	if !utf8.ValidString(c.Name) || utf8.RuneCountInString(c.Name) > MaxNameRunes {
		return fmt.Errorf("name is longer than %d characters or not UTF-8", MaxNameRunes)
	}
	for _, r := range c.Name {
		if unicode.IsControl(r) {
			return errors.New("name contains control characters")
		}
	}
	if _, ok := org.Queue(c.Queue); !ok {
		if ValidName(c.Queue) {
			return fmt.Errorf("queue %q does not exist in organization %q", c.Queue, org.ID)
		}
		return fmt.Errorf("queue does not exist in organization %q", org.ID)
	}
	if c.Role != protocol.RoleAgent && (len(c.Skills) > 0 || c.Capacity != 0) {
		return errors.New("skills and capacity are for agents only")
	}
	if err := c.Skills.Check(); err != nil {
		return fmt.Errorf("skills: %w", err)
	}
	if c.RecordConsent && c.Role != protocol.RoleCustomer {
		return errors.New("record_consent is for customers only")
	}
	if c.Capacity < 0 || c.Capacity > MaxCapacity {
		return fmt.Errorf("capacity %d is out of range (1 to %d; absent means 1)", c.Capacity, MaxCapacity)
	}
	if len(c.Attrs) > MaxAttrs {
		return fmt.Errorf("more than %d attributes", MaxAttrs)
	}
	for k, v := range c.Attrs {
		if k == "" || len(k) > MaxAttrKey {
			return fmt.Errorf("attribute key is empty or longer than %d bytes", MaxAttrKey)
		}
		if len(v) > MaxAttrValue {
			return fmt.Errorf("attribute value is longer than %d bytes", MaxAttrValue)
		}
	}
	return nil
}

// Mint signs a token for org with claims c, valid from now for ttl
// (0 < ttl <= MaxTokenTTL). It sets the org, iat, nbf and exp claims, and a
// random jti when c has none; the header carries kid = org.APIKey when the
// key is set. It refuses claims that Verify would reject.
func Mint(org *Org, c Claims, ttl time.Duration, now time.Time) (string, error) {
	if org == nil {
		return "", errors.New("mint token: no organization")
	}
	if len(org.APISecret) < MinSecretLen {
		return "", fmt.Errorf("mint token for org %q: api secret is %d bytes; it must be at least %d", org.ID, len(org.APISecret), MinSecretLen)
	}
	if ttl <= 0 || ttl > MaxTokenTTL {
		return "", fmt.Errorf("mint token for org %q: ttl %v is out of range (more than 0, at most %v)", org.ID, ttl, MaxTokenTTL)
	}
	if c.Org != "" && c.Org != org.ID {
		return "", fmt.Errorf("mint token for org %q: claims name another organization", org.ID)
	}
	c.Org = org.ID
	if err := c.check(org); err != nil {
		return "", fmt.Errorf("mint token for org %q: %w", org.ID, err)
	}
	c.IssuedAt = jwt.NewNumericDate(now)
	c.NotBefore = jwt.NewNumericDate(now)
	c.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
	if c.ID == "" {
		c.ID = rand.Text()
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, &c)
	if org.APIKey != "" {
		t.Header["kid"] = org.APIKey
	}
	s, err := t.SignedString(org.APISecret)
	if err != nil {
		return "", fmt.Errorf("mint token for org %q: %w", org.ID, err)
	}
	if len(s) > protocol.MaxTokenLen {
		return "", fmt.Errorf("mint token for org %q: token is %d bytes; the limit is %d", org.ID, len(s), protocol.MaxTokenLen)
	}
	return s, nil
}

// Verifier checks tokens against a Directory.
type Verifier struct {
	Dir *Directory
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Leeway is the clock skew tolerated on exp, nbf and iat. Zero means
	// DefaultLeeway (30s); a negative value means none.
	Leeway time.Duration
	// MaxLifetime is the longest lifetime a token may have: exp - iat, or
	// exp - now (plus Leeway) for a token without iat. Zero means
	// DefaultMaxLifetime (24h).
	MaxLifetime time.Duration
}

// Verify checks a token and returns its claims and organization. It accepts
// only HS256 tokens signed with the secret of the organization named in the
// "org" claim, whose "kid" header (if any) is that organization's API key,
// that carry an exp claim not yet passed, no nbf and no iat in the future,
// live no longer than MaxLifetime, and whose claims are valid for the
// organization (role, sub, queue, name, attrs). The header and the claims
// must name every key once; exp, nbf and iat must be JSON numbers; typ, if
// present, must be "JWT"; crit and the key sources jku, jwk, x5u, x5c, x5t
// and x5t#S256 are refused (see checkRaw).
//
// Every error is a *protocol.Error with code bad_token, token_expired or
// unknown_org; its message never contains the token or personal data.
func (v *Verifier) Verify(token string) (*Claims, *Org, error) {
	if token == "" {
		return nil, nil, protocol.Errorf(protocol.CodeBadToken, "token is empty")
	}
	if len(token) > protocol.MaxTokenLen {
		return nil, nil, protocol.Errorf(protocol.CodeBadToken, "token is longer than %d bytes", protocol.MaxTokenLen)
	}
	if pe := checkRaw(token); pe != nil {
		return nil, nil, pe
	}
	now := v.Now
	if now == nil {
		now = time.Now
	}
	leeway := v.Leeway
	switch {
	case leeway == 0:
		leeway = DefaultLeeway
	case leeway < 0:
		leeway = 0
	}
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{algorithm}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(now),
		jwt.WithStrictDecoding(),
	)
	var claims Claims
	var org *Org
	keyFunc := func(t *jwt.Token) (any, error) {
		if t.Method == nil || t.Method.Alg() != algorithm {
			return nil, protocol.Errorf(protocol.CodeBadToken, "token must be signed with %s", algorithm)
		}
		if claims.Org == "" {
			return nil, protocol.Errorf(protocol.CodeBadToken, "token has no org claim")
		}
		o, ok := v.Dir.Org(claims.Org)
		if !ok {
			if ValidName(claims.Org) {
				return nil, protocol.Errorf(protocol.CodeUnknownOrg, "organization %q is not known", claims.Org)
			}
			return nil, protocol.Errorf(protocol.CodeUnknownOrg, "organization is not known")
		}
		if kid, present := t.Header["kid"]; present {
			if s, ok := kid.(string); !ok || s != o.APIKey {
				return nil, protocol.Errorf(protocol.CodeBadToken, "token kid does not match the organization's api key")
			}
		}
		org = o
		return o.APISecret, nil
	}
	t, err := p.ParseWithClaims(token, &claims, keyFunc)
	if err != nil {
		return nil, nil, tokenError(t, err)
	}
	if org == nil { // cannot happen: a verified token went through keyFunc
		return nil, nil, protocol.Errorf(protocol.CodeBadToken, "token could not be verified")
	}
	if pe := v.checkLifetime(&claims, now(), leeway); pe != nil {
		return nil, nil, pe
	}
	if err := claims.check(org); err != nil {
		return nil, nil, protocol.Errorf(protocol.CodeBadToken, "%s", err.Error())
	}
	return &claims, org, nil
}

// checkLifetime refuses a token issued in the future (iat later than now
// plus leeway) or living longer than v.MaxLifetime. A token's lifetime is
// exp - iat; without iat it is judged by exp - now, with leeway for the
// issuer's clock. c has an exp: the parser requires one.
func (v *Verifier) checkLifetime(c *Claims, now time.Time, leeway time.Duration) *protocol.Error {
	limit := cmp.Or(v.MaxLifetime, DefaultMaxLifetime)
	if c.IssuedAt == nil {
		if c.ExpiresAt.Sub(now) > limit+leeway {
			return protocol.Errorf(protocol.CodeBadToken, "token expires more than %v from now, the longest lifetime this server accepts (it has no iat)", limit)
		}
		return nil
	}
	if c.IssuedAt.After(now.Add(leeway)) {
		return protocol.Errorf(protocol.CodeBadToken, "token is issued in the future (iat is more than %v ahead of the server's clock)", leeway)
	}
	if life := c.ExpiresAt.Sub(c.IssuedAt.Time); life > limit {
		return protocol.Errorf(protocol.CodeBadToken, "token lifetime (exp - iat) is %v; this server accepts at most %v", life.Round(time.Second), limit)
	}
	return nil
}

// tokenError maps a jwt parse error to a protocol error without echoing
// the token.
func tokenError(t *jwt.Token, err error) *protocol.Error {
	var pe *protocol.Error
	switch {
	case errors.As(err, &pe):
		return pe
	case errors.Is(err, jwt.ErrTokenExpired):
		return protocol.Errorf(protocol.CodeTokenExpired, "token has expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return protocol.Errorf(protocol.CodeTokenExpired, "token is not valid yet (nbf)")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return protocol.Errorf(protocol.CodeBadToken, "token has no expiry (exp)")
	case errors.Is(err, jwt.ErrTokenMalformed):
		return protocol.Errorf(protocol.CodeBadToken, "token is malformed")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if t != nil && t.Method != nil && t.Method.Alg() != algorithm {
			return protocol.Errorf(protocol.CodeBadToken, "token must be signed with %s", algorithm)
		}
		return protocol.Errorf(protocol.CodeBadToken, "token signature is invalid")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return protocol.Errorf(protocol.CodeBadToken, "token must be signed with %s", algorithm)
	default:
		return protocol.Errorf(protocol.CodeBadToken, "token is invalid")
	}
}
