package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/helpcaster/helpcaster/internal/jsonkeys"
	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/helpcaster/helpcaster/signaling/routing"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testOrgs() []Org {
	return []Org{
		{
			ID:        "acme",
			APIKey:    "acme-key",
			APISecret: []byte("acme-secret-0123456789abcdef0123456789"),
			Origins:   []string{"https://shop.acme.example"},
			Queues:    []Queue{{Name: "support"}, {Name: "sales", MaxLength: 5}},
		},
		{
			ID:        "globex",
			APIKey:    "globex-key",
			APISecret: []byte("globex-secret-0123456789abcdef012345678"),
			Queues:    []Queue{{Name: "help"}},
		},
	}
}

func testDir(t testing.TB) *Directory {
	t.Helper()
	d, err := NewDirectory(testOrgs())
	if err != nil {
		t.Fatalf("NewDirectory: %v", err)
	}
	return d
}

func customer() Claims {
	return Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: "visitor-42"},
		Role:             protocol.RoleCustomer,
		Name:             "Ada",
		Queue:            "sales",
		Attrs:            map[string]string{"language": "en", "tier": "gold"},
	}
}

// rawToken assembles a token from a header and claims, signing with sign
// (nil: empty signature).
func rawToken(t testing.TB, header map[string]any, claims any, sign func(string) []byte) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	s := enc(header) + "." + enc(claims)
	var sig []byte
	if sign != nil {
		sig = sign(s)
	}
	return s + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestVerify(t *testing.T) {
	dir := testDir(t)
	acme, _ := dir.Org("acme")
	globex, _ := dir.Org("globex")
	mint := func(org *Org, c Claims, ttl time.Duration, at time.Time) string {
		t.Helper()
		s, err := Mint(org, c, ttl, at)
		if err != nil {
			t.Fatalf("Mint: %v", err)
		}
		return s
	}
	signWith := func(m jwt.SigningMethod, key any, claims jwt.Claims, kid string) string {
		t.Helper()
		tok := jwt.NewWithClaims(m, claims)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatalf("sign: %v", err)
		}
		return s
	}
	validClaims := func() *Claims {
		c := customer()
		c.Org = "acme"
		c.ExpiresAt = jwt.NewNumericDate(t0.Add(time.Hour))
		c.IssuedAt = jwt.NewNumericDate(t0)
		return &c
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	forgedOrg := *acme
	forgedOrg.APISecret = []byte("not-the-acme-secret-0123456789abcdef")

	tests := []struct {
		name  string
		token func() string
		code  protocol.Code // "" = valid
	}{
		{"valid", func() string { return mint(acme, customer(), time.Hour, t0) }, ""},
		{"valid agent default queue", func() string {
			c := Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "agent-1"}, Role: protocol.RoleAgent}
			return mint(globex, c, time.Minute, t0)
		}, ""},
		{"valid without kid", func() string { return signWith(jwt.SigningMethodHS256, acme.APISecret, validClaims(), "") }, ""},
		{"within leeway after exp", func() string { return mint(acme, customer(), time.Hour, t0.Add(-time.Hour-20*time.Second)) }, ""},
		{"expired", func() string { return mint(acme, customer(), time.Hour, t0.Add(-2*time.Hour)) }, protocol.CodeTokenExpired},
		{"nbf in future", func() string { return mint(acme, customer(), time.Hour, t0.Add(10*time.Minute)) }, protocol.CodeTokenExpired},
		{"no exp", func() string {
			c := validClaims()
			c.ExpiresAt = nil
			return signWith(jwt.SigningMethodHS256, acme.APISecret, c, "acme-key")
		}, protocol.CodeBadToken},
		{"forged", func() string { return mint(&forgedOrg, customer(), time.Hour, t0) }, protocol.CodeBadToken},
		{"alg none", func() string {
			return rawToken(t, map[string]any{"alg": "none", "typ": "JWT"}, validClaims(), nil)
		}, protocol.CodeBadToken},
		{"alg none via library", func() string {
			return signWith(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, validClaims(), "acme-key")
		}, protocol.CodeBadToken},
		{"no alg", func() string { return rawToken(t, map[string]any{"typ": "JWT"}, validClaims(), nil) }, protocol.CodeBadToken},
		{"RS256", func() string { return signWith(jwt.SigningMethodRS256, rsaKey, validClaims(), "acme-key") }, protocol.CodeBadToken},
		{"HS512 with right secret", func() string {
			return signWith(jwt.SigningMethodHS512, acme.APISecret, validClaims(), "acme-key")
		}, protocol.CodeBadToken},
		{"HS384 with right secret", func() string {
			return signWith(jwt.SigningMethodHS384, acme.APISecret, validClaims(), "")
		}, protocol.CodeBadToken},
		{"wrong kid", func() string {
			return signWith(jwt.SigningMethodHS256, acme.APISecret, validClaims(), "globex-key")
		}, protocol.CodeBadToken},
		{"non-string kid", func() string {
			return rawToken(t, map[string]any{"alg": "HS256", "kid": 7}, validClaims(), nil)
		}, protocol.CodeBadToken},
		{"unknown org", func() string {
			c := validClaims()
			c.Org = "initech"
			return signWith(jwt.SigningMethodHS256, acme.APISecret, c, "")
		}, protocol.CodeUnknownOrg},
		{"no org claim", func() string {
			c := validClaims()
			c.Org = ""
			return signWith(jwt.SigningMethodHS256, acme.APISecret, c, "")
		}, protocol.CodeBadToken},
		{"signed by A, claims org B", func() string {
			c := validClaims()
			c.Org = "globex"
			c.Queue = ""
			return signWith(jwt.SigningMethodHS256, acme.APISecret, c, "")
		}, protocol.CodeBadToken},
		{"signed by A, claims org B, kid B", func() string {
			c := validClaims()
			c.Org = "globex"
			c.Queue = ""
			return signWith(jwt.SigningMethodHS256, acme.APISecret, c, "globex-key")
		}, protocol.CodeBadToken},
		{"bad role", func() string {
			c := validClaims()
			c.Role = "admin"
			return signWith(jwt.SigningMethodHS256, acme.APISecret, c, "")
		}, protocol.CodeBadToken},
		{"unknown queue", func() string {
			c := validClaims()
			c.Queue = "billing"
			return signWith(jwt.SigningMethodHS256, acme.APISecret, c, "")
		}, protocol.CodeBadToken},
		{"empty sub", func() string {
			c := validClaims()
			c.Subject = ""
			return signWith(jwt.SigningMethodHS256, acme.APISecret, c, "")
		}, protocol.CodeBadToken},
		{"long sub", func() string {
			c := validClaims()
			c.Subject = strings.Repeat("s", MaxSubLen+1)
			return signWith(jwt.SigningMethodHS256, acme.APISecret, c, "")
		}, protocol.CodeBadToken},
		{"long name", func() string {
			c := validClaims()
			c.Name = strings.Repeat("é", MaxNameRunes+1)
			return signWith(jwt.SigningMethodHS256, acme.APISecret, c, "")
		}, protocol.CodeBadToken},
		{"too many attrs", func() string {
			c := validClaims()
			c.Attrs = map[string]string{}
			for i := range MaxAttrs + 1 {
				c.Attrs[strings.Repeat("k", i+1)] = "v"
			}
			return signWith(jwt.SigningMethodHS256, acme.APISecret, c, "")
		}, protocol.CodeBadToken},
		{"long attr value", func() string {
			c := validClaims()
			c.Attrs = map[string]string{"k": strings.Repeat("v", MaxAttrValue+1)}
			return signWith(jwt.SigningMethodHS256, acme.APISecret, c, "")
		}, protocol.CodeBadToken},
		{"attrs wrong type", func() string {
			c := map[string]any{"org": "acme", "sub": "x", "role": "customer", "exp": t0.Add(time.Hour).Unix(), "attrs": map[string]int{"a": 1}}
			return signWith(jwt.SigningMethodHS256, acme.APISecret, jwt.MapClaims(c), "")
		}, protocol.CodeBadToken},
		{"skills wrong type", func() string {
			c := map[string]any{"org": "acme", "sub": "x", "role": "agent", "exp": t0.Add(time.Hour).Unix(), "skills": map[string]string{"language": "de"}}
			return signWith(jwt.SigningMethodHS256, acme.APISecret, jwt.MapClaims(c), "")
		}, protocol.CodeBadToken},
		{"skill level out of range", func() string {
			c := map[string]any{"org": "acme", "sub": "x", "role": "agent", "exp": t0.Add(time.Hour).Unix(), "skills": map[string]any{"language": map[string]int{"de": 11}}}
			return signWith(jwt.SigningMethodHS256, acme.APISecret, jwt.MapClaims(c), "")
		}, protocol.CodeBadToken},
		{"customer with skills", func() string {
			c := map[string]any{"org": "acme", "sub": "x", "role": "customer", "exp": t0.Add(time.Hour).Unix(), "skills": map[string]any{"language": map[string]int{"de": 1}}}
			return signWith(jwt.SigningMethodHS256, acme.APISecret, jwt.MapClaims(c), "")
		}, protocol.CodeBadToken},
		{"capacity too high", func() string {
			c := map[string]any{"org": "acme", "sub": "x", "role": "agent", "exp": t0.Add(time.Hour).Unix(), "capacity": MaxCapacity + 1}
			return signWith(jwt.SigningMethodHS256, acme.APISecret, jwt.MapClaims(c), "")
		}, protocol.CodeBadToken},
		{"capacity not a number", func() string {
			c := map[string]any{"org": "acme", "sub": "x", "role": "agent", "exp": t0.Add(time.Hour).Unix(), "capacity": "2"}
			return signWith(jwt.SigningMethodHS256, acme.APISecret, jwt.MapClaims(c), "")
		}, protocol.CodeBadToken},
		{"too long", func() string { return strings.Repeat("a", protocol.MaxTokenLen+1) }, protocol.CodeBadToken},
		{"empty", func() string { return "" }, protocol.CodeBadToken},
		{"garbage", func() string { return "hello" }, protocol.CodeBadToken},
		{"garbage segments", func() string { return "a.b.c" }, protocol.CodeBadToken},
		{"garbage four segments", func() string { return "a.b.c.d" }, protocol.CodeBadToken},
		{"header not json", func() string {
			return base64.RawURLEncoding.EncodeToString([]byte("{{")) + ".e30."
		}, protocol.CodeBadToken},
		{"truncated signature", func() string {
			s := mint(acme, customer(), time.Hour, t0)
			return s[:len(s)-3]
		}, protocol.CodeBadToken},
	}
	v := &Verifier{Dir: dir, Now: func() time.Time { return t0 }}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := tt.token()
			claims, org, err := v.Verify(tok)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if org == nil || claims.Org != org.ID || claims.Subject == "" {
					t.Fatalf("Verify returned org %v claims %+v", org, claims)
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify accepted the token; want %s", tt.code)
			}
			var pe *protocol.Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T) is not a *protocol.Error", err, err)
			}
			t.Logf("%v", pe)
			if pe.Code != tt.code {
				t.Fatalf("code %s (%v); want %s", pe.Code, err, tt.code)
			}
			if claims != nil || org != nil {
				t.Errorf("Verify returned claims or org with an error")
			}
			if len(tok) > 8 && strings.Contains(pe.Message, tok[:8]) || strings.Contains(pe.Message, "visitor-42") || strings.Contains(pe.Message, "Ada") {
				t.Errorf("message %q echoes the token or personal data", pe.Message)
			}
		})
	}
}

func TestVerifyRoundTrip(t *testing.T) {
	dir := testDir(t)
	acme, _ := dir.Org("acme")
	tok, err := Mint(acme, customer(), time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	v := &Verifier{Dir: dir, Now: func() time.Time { return t0.Add(time.Minute) }}
	c, org, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	want := customer()
	if org.ID != "acme" || c.Org != "acme" || c.Subject != want.Subject || c.Role != want.Role ||
		c.Name != want.Name || c.Queue != want.Queue || c.Attrs["language"] != "en" || c.Attrs["tier"] != "gold" {
		t.Errorf("claims %+v org %s", c, org.ID)
	}
	if !c.ExpiresAt.Equal(t0.Add(time.Hour)) || !c.NotBefore.Equal(t0) || !c.IssuedAt.Equal(t0) || c.ID == "" {
		t.Errorf("registered claims %+v", c.RegisteredClaims)
	}
	parsed, _, err := jwt.NewParser().ParseUnverified(tok, &Claims{})
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Header["kid"] != "acme-key" || parsed.Header["alg"] != "HS256" {
		t.Errorf("header %v", parsed.Header)
	}
}

func TestVerifyLeeway(t *testing.T) {
	dir := testDir(t)
	acme, _ := dir.Org("acme")
	tok, err := Mint(acme, customer(), time.Minute, t0)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		leeway time.Duration
		now    time.Time
		ok     bool
	}{
		{"default leeway before nbf", 0, t0.Add(-20 * time.Second), true},
		{"default leeway after exp", 0, t0.Add(80 * time.Second), true},
		{"beyond default leeway", 0, t0.Add(100 * time.Second), false},
		{"no leeway after exp", -1, t0.Add(61 * time.Second), false},
		{"no leeway before nbf", -1, t0.Add(-time.Second), false},
		{"long leeway", 5 * time.Minute, t0.Add(5 * time.Minute), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &Verifier{Dir: dir, Leeway: tt.leeway, Now: func() time.Time { return tt.now }}
			_, _, err := v.Verify(tok)
			if (err == nil) != tt.ok {
				t.Fatalf("Verify: %v; want ok=%v", err, tt.ok)
			}
			if err != nil && protocol.AsError(err).Code != protocol.CodeTokenExpired {
				t.Fatalf("code %v; want token_expired", err)
			}
		})
	}
}

func TestMintRefuses(t *testing.T) {
	acme := &testOrgs()[0]
	tests := []struct {
		name string
		org  *Org
		edit func(*Claims)
		ttl  time.Duration
	}{
		{"nil org", nil, func(*Claims) {}, time.Hour},
		{"short secret", &Org{ID: "x", APISecret: []byte("short"), Queues: []Queue{{Name: "q"}}}, func(*Claims) {}, time.Hour},
		{"zero ttl", acme, func(*Claims) {}, 0},
		{"negative ttl", acme, func(*Claims) {}, -time.Second},
		{"ttl over 24h", acme, func(*Claims) {}, 25 * time.Hour},
		{"bad role", acme, func(c *Claims) { c.Role = "root" }, time.Hour},
		{"empty role", acme, func(c *Claims) { c.Role = "" }, time.Hour},
		{"unknown queue", acme, func(c *Claims) { c.Queue = "nope" }, time.Hour},
		{"empty sub", acme, func(c *Claims) { c.Subject = "" }, time.Hour},
		{"other org", acme, func(c *Claims) { c.Org = "globex" }, time.Hour},
		{"control char in name", acme, func(c *Claims) { c.Name = "a\x00b" }, time.Hour},
		{"empty attr key", acme, func(c *Claims) { c.Attrs = map[string]string{"": "x"} }, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := customer()
			tt.edit(&c)
			if tok, err := Mint(tt.org, c, tt.ttl, t0); err == nil {
				t.Fatalf("Mint succeeded: %s", tok)
			}
		})
	}
	if _, err := Mint(acme, customer(), 24*time.Hour, t0); err != nil {
		t.Errorf("Mint with 24h ttl: %v", err)
	}
}

func TestAllowsOrigin(t *testing.T) {
	tests := []struct {
		name    string
		allowed []string
		origin  string
		want    bool
	}{
		{"exact", []string{"https://shop.example.com"}, "https://shop.example.com", true},
		{"exact case-insensitive", []string{"https://Shop.Example.com"}, "HTTPS://shop.EXAMPLE.com", true},
		{"exact with port", []string{"https://shop.example.com:8443"}, "https://shop.example.com:8443", true},
		{"port mismatch", []string{"https://shop.example.com"}, "https://shop.example.com:8443", false},
		{"port mismatch explicit", []string{"https://shop.example.com:8443"}, "https://shop.example.com:9443", false},
		{"default port explicit", []string{"https://shop.example.com:443"}, "https://shop.example.com", true},
		{"scheme mismatch", []string{"https://shop.example.com"}, "http://shop.example.com", false},
		{"other host", []string{"https://shop.example.com"}, "https://evil.example.com", false},
		{"suffix trick", []string{"https://shop.example.com"}, "https://shop.example.com.evil.net", false},
		{"wildcard one level", []string{"https://*.example.com"}, "https://shop.example.com", true},
		{"wildcard two levels", []string{"https://*.example.com"}, "https://eu.shop.example.com", true},
		{"wildcard not apex", []string{"https://*.example.com"}, "https://example.com", false},
		{"wildcard not lookalike", []string{"https://*.example.com"}, "https://badexample.com", false},
		{"wildcard scheme", []string{"https://*.example.com"}, "http://shop.example.com", false},
		{"wildcard port", []string{"https://*.example.com"}, "https://shop.example.com:8443", false},
		{"wildcard with port", []string{"https://*.example.com:8443"}, "https://shop.example.com:8443", true},
		{"wildcard in request", []string{"https://*.example.com"}, "https://*.example.com", false},
		{"any", []string{"*"}, "https://anything.test", true},
		{"any null", []string{"*"}, "null", true},
		{"null rejected", []string{"https://shop.example.com"}, "null", false},
		{"empty origin", []string{"https://shop.example.com"}, "", true},
		{"empty origin no origins", nil, "", true},
		{"no origins", nil, "https://shop.example.com", false},
		{"path in origin", []string{"https://shop.example.com"}, "https://shop.example.com/x", false},
		{"userinfo in origin", []string{"https://shop.example.com"}, "https://a@shop.example.com", false},
		{"garbage origin", []string{"https://shop.example.com"}, "shop.example.com", false},
		{"ipv4 loopback", []string{"http://127.0.0.1:8080"}, "http://127.0.0.1:8080", true},
		{"localhost other port", []string{"http://localhost:8080"}, "http://localhost:8081", false},
		{"ipv6", []string{"http://[::1]:8080"}, "http://[0:0::1]:8080", true},
		{"second entry", []string{"https://a.test", "https://b.test"}, "https://b.test", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &Org{Origins: tt.allowed}
			if got := o.AllowsOrigin(tt.origin); got != tt.want {
				t.Errorf("AllowsOrigin(%q) with %q = %v; want %v", tt.origin, tt.allowed, got, tt.want)
			}
		})
	}
}

func TestOrgQueue(t *testing.T) {
	dir := testDir(t)
	acme, _ := dir.Org("acme")
	tests := []struct {
		name   string
		want   string
		maxLen int
		ok     bool
	}{
		{"", "support", DefaultQueueMaxLength, true},
		{"support", "support", DefaultQueueMaxLength, true},
		{"sales", "sales", 5, true},
		{"billing", "", 0, false},
	}
	for _, tt := range tests {
		q, ok := acme.Queue(tt.name)
		if ok != tt.ok || q.Name != tt.want || q.MaxLength != tt.maxLen {
			t.Errorf("Queue(%q) = %+v, %v; want %s/%d, %v", tt.name, q, ok, tt.want, tt.maxLen, tt.ok)
		}
	}
}

func TestNewDirectory(t *testing.T) {
	tests := []struct {
		name string
		edit func([]Org) []Org
		want string // substring of the error; "" = valid
	}{
		{"valid", func(o []Org) []Org { return o }, ""},
		{"empty", func([]Org) []Org { return nil }, ""},
		{"bad id", func(o []Org) []Org { o[0].ID = "Acme"; return o }, `org "Acme": id:`},
		{"id starts with dash", func(o []Org) []Org { o[0].ID = "-acme"; return o }, "id:"},
		{"empty id", func(o []Org) []Org { o[0].ID = ""; return o }, "org #1: id: is empty"},
		{"long id", func(o []Org) []Org { o[0].ID = strings.Repeat("a", 64); return o }, "longer than 63"},
		{"duplicate id", func(o []Org) []Org { o[1].ID = "acme"; return o }, "id is used by another"},
		{"empty key", func(o []Org) []Org { o[1].APIKey = ""; return o }, `org "globex": api key is empty`},
		{"key with space", func(o []Org) []Org { o[1].APIKey = "a b"; return o }, "printable"},
		{"duplicate key", func(o []Org) []Org { o[1].APIKey = "acme-key"; return o }, `also used by org "acme"`},
		{"short secret", func(o []Org) []Org { o[0].APISecret = make([]byte, 31); return o }, "at least 32"},
		{"no queues", func(o []Org) []Org { o[0].Queues = nil; return o }, "no queues"},
		{"bad queue name", func(o []Org) []Org { o[0].Queues[1].Name = "Sales Team"; return o }, "queue 2 name"},
		{"duplicate queue", func(o []Org) []Org { o[0].Queues[1].Name = "support"; return o }, "listed twice"},
		{"negative max length", func(o []Org) []Org { o[0].Queues[0].MaxLength = -1; return o }, "max length"},
		{"overflow ok", func(o []Org) []Org { o[0].Queues[0].Overflow = Overflow{After: time.Minute, To: "sales"}; return o }, ""},
		{"overflow unknown queue", func(o []Org) []Org { o[0].Queues[0].Overflow = Overflow{After: time.Minute, To: "help"}; return o }, "does not have"},
		{"overflow into itself", func(o []Org) []Org {
			o[0].Queues[0].Overflow = Overflow{After: time.Minute, To: "support"}
			return o
		}, "into itself"},
		{"overflow circle", func(o []Org) []Org {
			o[0].Queues[0].Overflow = Overflow{After: time.Minute, To: "sales"}
			o[0].Queues[1].Overflow = Overflow{After: time.Minute, To: "support"}
			return o
		}, "in a circle"},
		{"overflow without after", func(o []Org) []Org { o[0].Queues[0].Overflow = Overflow{To: "sales"}; return o }, "after"},
		{"offer timeout too long", func(o []Org) []Org { o[0].Queues[0].OfferTimeout = time.Hour; return o }, "offer timeout"},
		{"bad routing", func(o []Org) []Org {
			o[0].Queues[0].Policy = &routing.Policy{Priorities: []routing.PriorityRule{{Attr: "tier", Value: "gold"}}}
			return o
		}, `queue "support" routing: priority rule 1`},
		{"origin no scheme", func(o []Org) []Org { o[0].Origins = []string{"shop.example.com"}; return o }, "origin"},
		{"origin ftp", func(o []Org) []Org { o[0].Origins = []string{"ftp://shop.example.com"}; return o }, "scheme"},
		{"origin path", func(o []Org) []Org { o[0].Origins = []string{"https://shop.example.com/"}; return o }, "origin"},
		{"origin bad port", func(o []Org) []Org { o[0].Origins = []string{"https://shop.example.com:99999"}; return o }, "port"},
		{"origin mid wildcard", func(o []Org) []Org { o[0].Origins = []string{"https://shop.*.com"}; return o }, "origin"},
		{"origin star ok", func(o []Org) []Org { o[0].Origins = []string{"*"}; return o }, ""},
		{"origin null", func(o []Org) []Org { o[0].Origins = []string{"null"}; return o }, "origin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewDirectory(tt.edit(testOrgs()))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("NewDirectory: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("NewDirectory accepted; want error containing %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestDirectoryIsACopy(t *testing.T) {
	orgs := testOrgs()
	d, err := NewDirectory(orgs)
	if err != nil {
		t.Fatal(err)
	}
	orgs[0].APISecret[0] = 'X'
	orgs[0].Queues[0].Name = "changed"
	orgs[0].Origins[0] = "*"
	o, ok := d.Org("acme")
	if !ok || o.APISecret[0] != 'a' || o.Queues[0].Name != "support" || o.Origins[0] == "*" {
		t.Errorf("directory shares memory with its input: %+v", o)
	}
	list := d.Orgs()
	if len(list) != 2 || list[0].ID != "acme" || list[1].ID != "globex" {
		t.Errorf("Orgs() = %v", list)
	}
	list[0] = nil
	if d.Orgs()[0] == nil {
		t.Error("Orgs() returns internal slice")
	}
	if _, ok := d.Org("nope"); ok {
		t.Error("unknown org found")
	}
}

func TestSharedSecrets(t *testing.T) {
	orgs := testOrgs()
	if got := testDir(t).SharedSecrets(); got != nil {
		t.Errorf("SharedSecrets of distinct secrets = %q", got)
	}
	more := func(id string, secret []byte) Org {
		return Org{ID: id, APIKey: id + "-key", APISecret: secret, Queues: []Queue{{Name: "q"}}}
	}
	orgs = append(orgs,
		more("initech", slices.Clone(orgs[1].APISecret)), // globex's, another slice
		more("hooli", []byte("hooli-secret-0123456789abcdef0123456789")),
		more("aaa", slices.Clone(orgs[1].APISecret)),
		more("zeta", []byte("zeta-secret-0123456789abcdef0123456789ab")),
		more("beta", []byte("zeta-secret-0123456789abcdef0123456789ab")),
	)
	d, err := NewDirectory(orgs)
	if err != nil {
		t.Fatal(err)
	}
	got := d.SharedSecrets()
	want := [][]string{{"aaa", "globex", "initech"}, {"beta", "zeta"}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("SharedSecrets = %q; want %q", got, want)
	}
	if (*Directory)(nil).SharedSecrets() != nil {
		t.Error("nil directory has shared secrets")
	}
}

func FuzzVerify(f *testing.F) {
	dir := testDir(f)
	acme, _ := dir.Org("acme")
	tok, err := Mint(acme, customer(), time.Hour, t0)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(tok)
	f.Add("")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add(rawToken(f, map[string]any{"alg": "HS256", "kid": "acme-key"}, map[string]any{"org": "acme", "exp": 1e300, "nbf": -1e300, "attrs": map[string]string{"a": "b"}}, nil))
	// Signed with acme's secret, so the fuzzer starts past the signature:
	// duplicate keys, dates that are not numbers, crit, key sources, typ,
	// lifetimes.
	iat := t0.Unix()
	dates := fmt.Sprintf(`,"iat":%d,"exp":%d`, iat, iat+3600)
	for _, hc := range [][2]string{
		{`{"alg":"HS256","typ":"JWT","kid":"acme-key"}`, claimsJSON(dates)},
		{`{"alg":"HS256"}`, claimsJSON(dates + `,"role":"agent"`)},
		{`{"alg":"none","alg":"HS256"}`, claimsJSON(dates)},
		{`{"alg":"HS256"}`, claimsJSON(dates + `,"attrs":{"a":"1","\u0061":"2"}`)},
		{`{"alg":"HS256"}`, claimsJSON(fmt.Sprintf(`,"iat":%d,"exp":"%d"`, iat, iat+60))},
		{`{"alg":"HS256"}`, claimsJSON(fmt.Sprintf(`,"nbf":"1e12","exp":%d.5`, iat+60))},
		{`{"alg":"HS256"}`, claimsJSON(fmt.Sprintf(`,"iat":%d,"exp":%d`, iat, iat+10*365*86400))},
		{`{"alg":"HS256"}`, claimsJSON(fmt.Sprintf(`,"exp":%d`, iat+10*365*86400))},
		{`{"alg":"HS256"}`, claimsJSON(fmt.Sprintf(`,"iat":%d,"exp":%d`, iat+3600, iat+7200))},
		{`{"alg":"HS256","crit":["exp"]}`, claimsJSON(dates)},
		{`{"alg":"HS256","crit":[]}`, claimsJSON(dates)},
		{`{"alg":"HS256","jku":"https://example.com/k","jwk":{"kty":"oct"},"x5u":"u","x5c":["c"]}`, claimsJSON(dates)},
		{`{"alg":"HS256","typ":"at+jwt"}`, claimsJSON(dates)},
	} {
		f.Add(hs256(hc[0], hc[1], acme.APISecret))
	}
	v := &Verifier{Dir: dir, Now: func() time.Time { return t0 }}
	f.Fuzz(func(t *testing.T, s string) {
		c, org, err := v.Verify(s)
		if err != nil {
			var pe *protocol.Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *protocol.Error", err)
			}
			switch pe.Code {
			case protocol.CodeBadToken, protocol.CodeTokenExpired, protocol.CodeUnknownOrg:
			default:
				t.Fatalf("unexpected code %s", pe.Code)
			}
			if c != nil || org != nil {
				t.Fatal("claims returned with an error")
			}
			return
		}
		if c == nil || org == nil || c.Org != org.ID {
			t.Fatalf("accepted token with claims %+v org %v", c, org)
		}
		for _, part := range strings.Split(s, ".")[:2] {
			if b, err := segment(part); err != nil || jsonkeys.Unique(b) != nil {
				t.Fatalf("accepted a token whose part %q is not base64url of JSON with unique keys", part)
			}
		}
		if c.ExpiresAt == nil || c.IssuedAt != nil && c.ExpiresAt.Sub(c.IssuedAt.Time) > DefaultMaxLifetime {
			t.Fatalf("accepted a token without exp or living longer than %v: %+v", DefaultMaxLifetime, c.RegisteredClaims)
		}
	})
}
