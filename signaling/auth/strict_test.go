package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/helpcaster/helpcaster/signaling/protocol"
)

// hs256 signs a token made of the given header and claims JSON, byte for
// byte as written (so they may hold duplicate keys or odd types), with
// secret.
func hs256(header, claims string, secret []byte) string {
	input := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(claims))
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// claimsJSON is a valid customer claims set for acme at t0 with extra
// members appended (each ",\"k\":v"). iat and exp are left to the caller.
func claimsJSON(extra string) string {
	return `{"org":"acme","sub":"visitor-42","role":"customer","queue":"sales"` + extra + `}`
}

// TestVerifyStrict covers what the JWT library lets through on its own:
// duplicate keys, dates that are not JSON numbers, crit, key sources, typ,
// and lifetimes longer than the server's maximum. Every token is signed
// with acme's real secret, so only the rule under test can refuse it.
func TestVerifyStrict(t *testing.T) {
	dir := testDir(t)
	acme, _ := dir.Org("acme")
	iat := t0.Unix()
	dates := fmt.Sprintf(`,"iat":%d,"exp":%d`, iat, iat+3600)
	hdr := `{"alg":"HS256","typ":"JWT"}`
	tests := []struct {
		name, header, claims string
		code                 protocol.Code // "" = valid
		msg                  string        // substring of the message
	}{
		{"valid", hdr, claimsJSON(dates), "", ""},
		{"valid with spaces", "{ \"alg\" : \"HS256\" }", "{ \"org\":\"acme\", \"sub\":\"x\", \"role\":\"customer\", \"iat\" : " + fmt.Sprint(iat) + " , \"exp\":\n" + fmt.Sprint(iat+60) + " }", "", ""},
		{"valid fractional dates", hdr, claimsJSON(fmt.Sprintf(`,"iat":%d.5,"exp":%d.25`, iat, iat+60)), "", ""},

		// Duplicate keys: the library keeps the last.
		{"role twice", hdr, claimsJSON(dates + `,"role":"agent"`), protocol.CodeBadToken, `"role" appears twice in the claims set`},
		{"role twice escaped", hdr, claimsJSON(dates + `,"\u0072ole":"agent"`), protocol.CodeBadToken, "appears twice"},
		{"org twice", hdr, claimsJSON(dates + `,"org":"globex"`), protocol.CodeBadToken, "appears twice"},
		{"exp twice", hdr, claimsJSON(dates + fmt.Sprintf(`,"exp":%d`, iat+1e8)), protocol.CodeBadToken, "appears twice"},
		{"attr twice", hdr, claimsJSON(dates + `,"attrs":{"tier":"basic","tier":"gold"}`), protocol.CodeBadToken, "appears twice"},
		{"alg twice", `{"alg":"none","alg":"HS256"}`, claimsJSON(dates), protocol.CodeBadToken, `"alg" appears twice in the header`},
		{"kid twice", `{"alg":"HS256","kid":"globex-key","kid":"acme-key"}`, claimsJSON(dates), protocol.CodeBadToken, "appears twice in the header"},
		{"long key twice is not echoed", hdr, claimsJSON(dates + `,"` + strings.Repeat("k", 40) + `":1,"` + strings.Repeat("k", 40) + `":2`), protocol.CodeBadToken, "a key appears twice"},

		// Dates must be JSON numbers in range.
		{"exp string", hdr, claimsJSON(fmt.Sprintf(`,"iat":%d,"exp":"%d"`, iat, iat+3600)), protocol.CodeBadToken, "exp must be a JSON number"},
		{"exp string exponent", hdr, claimsJSON(`,"exp":"1.7723664e9"`), protocol.CodeBadToken, "exp must be a JSON number"},
		{"nbf string", hdr, claimsJSON(dates + fmt.Sprintf(`,"nbf":"%d"`, iat)), protocol.CodeBadToken, "nbf must be a JSON number"},
		{"iat string", hdr, claimsJSON(fmt.Sprintf(`,"iat":"%d","exp":%d`, iat, iat+60)), protocol.CodeBadToken, "iat must be a JSON number"},
		{"exp true", hdr, claimsJSON(`,"exp":true`), protocol.CodeBadToken, "exp must be a JSON number"},
		{"exp null", hdr, claimsJSON(`,"exp":null`), protocol.CodeBadToken, "exp must be a JSON number"},
		{"exp array", hdr, claimsJSON(fmt.Sprintf(`,"exp":[%d]`, iat+60)), protocol.CodeBadToken, "exp must be a JSON number"},
		{"exp object", hdr, claimsJSON(`,"exp":{}`), protocol.CodeBadToken, "exp must be a JSON number"},
		{"exp huge", hdr, claimsJSON(`,"exp":1e300`), protocol.CodeBadToken, "exp is out of range"},
		{"exp beyond year 9999", hdr, claimsJSON(`,"exp":253402300800`), protocol.CodeBadToken, "exp is out of range"},
		{"exp beyond float", hdr, claimsJSON(`,"exp":1e400`), protocol.CodeBadToken, "exp is out of range"},
		{"nbf negative", hdr, claimsJSON(dates + `,"nbf":-1`), protocol.CodeBadToken, "nbf is out of range"},
		{"iat negative huge", hdr, claimsJSON(fmt.Sprintf(`,"iat":-1e300,"exp":%d`, iat+60)), protocol.CodeBadToken, "iat is out of range"},

		// Lifetime: exp - iat, or exp - now without iat, at most 24h.
		{"ten years", hdr, claimsJSON(fmt.Sprintf(`,"iat":%d,"exp":%d`, iat, iat+10*365*86400)), protocol.CodeBadToken, "lifetime (exp - iat) is 87600h0m0s; this server accepts at most 24h0m0s"},
		{"ten years without iat", hdr, claimsJSON(fmt.Sprintf(`,"exp":%d`, iat+10*365*86400)), protocol.CodeBadToken, "more than 24h0m0s from now"},
		{"24h exactly", hdr, claimsJSON(fmt.Sprintf(`,"iat":%d,"exp":%d`, iat, iat+86400)), "", ""},
		{"24h and a second", hdr, claimsJSON(fmt.Sprintf(`,"iat":%d,"exp":%d`, iat, iat+86401)), protocol.CodeBadToken, "lifetime"},
		{"old iat makes it long", hdr, claimsJSON(fmt.Sprintf(`,"iat":%d,"exp":%d`, iat-86400, iat+60)), protocol.CodeBadToken, "lifetime"},
		{"24h from now without iat", hdr, claimsJSON(fmt.Sprintf(`,"exp":%d`, iat+86400)), "", ""},
		{"24h plus leeway without iat", hdr, claimsJSON(fmt.Sprintf(`,"exp":%d`, iat+86400+30)), "", ""},
		{"beyond 24h plus leeway without iat", hdr, claimsJSON(fmt.Sprintf(`,"exp":%d`, iat+86400+31)), protocol.CodeBadToken, "from now"},
		{"iat within leeway ahead", hdr, claimsJSON(fmt.Sprintf(`,"iat":%d,"exp":%d`, iat+30, iat+60)), "", ""},
		{"iat in the future", hdr, claimsJSON(fmt.Sprintf(`,"iat":%d,"exp":%d`, iat+31, iat+3600)), protocol.CodeBadToken, "issued in the future"},
		{"iat far in the future", hdr, claimsJSON(fmt.Sprintf(`,"iat":%d,"exp":%d`, iat+86400*365, iat+86400*365+60)), protocol.CodeBadToken, "issued in the future"},

		// crit: HelpCaster understands no extension.
		{"crit", `{"alg":"HS256","crit":["exp"],"exp":1}`, claimsJSON(dates), protocol.CodeBadToken, "does not support"},
		{"crit b64", `{"alg":"HS256","b64":false,"crit":["b64"]}`, claimsJSON(dates), protocol.CodeBadToken, "does not support"},
		{"crit unknown", `{"alg":"HS256","crit":["x-helpcaster"],"x-helpcaster":1}`, claimsJSON(dates), protocol.CodeBadToken, "does not support"},
		{"crit empty", `{"alg":"HS256","crit":[]}`, claimsJSON(dates), protocol.CodeBadToken, "crit is malformed"},
		{"crit string", `{"alg":"HS256","crit":"exp"}`, claimsJSON(dates), protocol.CodeBadToken, "crit is malformed"},
		{"crit null", `{"alg":"HS256","crit":null}`, claimsJSON(dates), protocol.CodeBadToken, "crit is malformed"},
		{"crit numbers", `{"alg":"HS256","crit":[1]}`, claimsJSON(dates), protocol.CodeBadToken, "crit is malformed"},

		// Key sources: the key is always the organization's secret.
		{"jku", `{"alg":"HS256","jku":"https://evil.example/keys"}`, claimsJSON(dates), protocol.CodeBadToken, "jku names a key"},
		{"jwk", `{"alg":"HS256","jwk":{"kty":"oct","k":"c2VjcmV0"}}`, claimsJSON(dates), protocol.CodeBadToken, "jwk names a key"},
		{"x5u", `{"alg":"HS256","x5u":"https://evil.example/cert"}`, claimsJSON(dates), protocol.CodeBadToken, "x5u names a key"},
		{"x5c", `{"alg":"HS256","x5c":["MIIB"]}`, claimsJSON(dates), protocol.CodeBadToken, "x5c names a key"},
		{"x5t", `{"alg":"HS256","x5t":"abc"}`, claimsJSON(dates), protocol.CodeBadToken, "x5t names a key"},
		{"x5t#S256", `{"alg":"HS256","x5t#S256":"abc"}`, claimsJSON(dates), protocol.CodeBadToken, "x5t#S256 names a key"},
		{"jku null", `{"alg":"HS256","jku":null}`, claimsJSON(dates), protocol.CodeBadToken, "jku names a key"},
		{"kid right", `{"alg":"HS256","kid":"acme-key"}`, claimsJSON(dates), "", ""},
		{"kid number", `{"alg":"HS256","kid":1}`, claimsJSON(dates), protocol.CodeBadToken, "kid"},
		{"unknown header ignored", `{"alg":"HS256","x-trace":"abc"}`, claimsJSON(dates), "", ""},

		// typ, when present, says JWT.
		{"no typ", `{"alg":"HS256"}`, claimsJSON(dates), "", ""},
		{"typ lower case", `{"alg":"HS256","typ":"jwt"}`, claimsJSON(dates), "", ""},
		{"typ media type", `{"alg":"HS256","typ":"application/jwt"}`, claimsJSON(dates), "", ""},
		{"typ at+jwt", `{"alg":"HS256","typ":"at+jwt"}`, claimsJSON(dates), protocol.CodeBadToken, "typ"},
		{"typ JOSE", `{"alg":"HS256","typ":"JOSE"}`, claimsJSON(dates), protocol.CodeBadToken, "typ"},
		{"typ number", `{"alg":"HS256","typ":1}`, claimsJSON(dates), protocol.CodeBadToken, "typ"},
		{"typ empty", `{"alg":"HS256","typ":""}`, claimsJSON(dates), protocol.CodeBadToken, "typ"},

		// alg is HS256 exactly, whatever the signature.
		{"alg lower case", `{"alg":"hs256"}`, claimsJSON(dates), protocol.CodeBadToken, "HS256"},
		{"alg with space", `{"alg":"HS256 "}`, claimsJSON(dates), protocol.CodeBadToken, "HS256"},
		{"alg none with mac", `{"alg":"none"}`, claimsJSON(dates), protocol.CodeBadToken, "HS256"},
		{"alg RS256 with mac", `{"alg":"RS256"}`, claimsJSON(dates), protocol.CodeBadToken, "HS256"},
		{"alg HS512 label on HS256 mac", `{"alg":"HS512"}`, claimsJSON(dates), protocol.CodeBadToken, "HS256"},
		{"alg array", `{"alg":["HS256"]}`, claimsJSON(dates), protocol.CodeBadToken, "HS256"},
		{"no alg", `{"typ":"JWT"}`, claimsJSON(dates), protocol.CodeBadToken, "HS256"},

		// Not JSON objects.
		{"header array", `["alg","HS256"]`, claimsJSON(dates), protocol.CodeBadToken, "header is not a JSON object"},
		{"header null", `null`, claimsJSON(dates), protocol.CodeBadToken, "header is not a JSON object"},
		{"claims null", hdr, `null`, protocol.CodeBadToken, "claims set is not a JSON object"},
		{"claims two values", hdr, claimsJSON(dates) + `{}`, protocol.CodeBadToken, "claims set is not JSON"},
	}
	v := &Verifier{Dir: dir, Now: func() time.Time { return t0 }}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := hs256(tt.header, tt.claims, acme.APISecret)
			c, org, err := v.Verify(tok)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if org.ID != "acme" || c.Role != protocol.RoleCustomer {
					t.Fatalf("Verify returned org %s role %s", org.ID, c.Role)
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify accepted the token as %s of %s; want %s", c.Role, org.ID, tt.code)
			}
			pe := protocol.AsError(err)
			t.Logf("%v", pe)
			if pe.Code != tt.code || !strings.Contains(pe.Message, tt.msg) {
				t.Fatalf("error %v; want %s containing %q", err, tt.code, tt.msg)
			}
			if strings.Contains(pe.Message, "visitor-42") || strings.Contains(pe.Message, strings.Repeat("k", 40)) {
				t.Errorf("message %q echoes a claim value or a long key", pe.Message)
			}
		})
	}
}

// TestVerifyMaxLifetime checks that Verifier.MaxLifetime sets the limit.
func TestVerifyMaxLifetime(t *testing.T) {
	dir := testDir(t)
	acme, _ := dir.Org("acme")
	iat := t0.Unix()
	hour := hs256(`{"alg":"HS256"}`, claimsJSON(fmt.Sprintf(`,"iat":%d,"exp":%d`, iat, iat+3600)), acme.APISecret)
	twoDays := hs256(`{"alg":"HS256"}`, claimsJSON(fmt.Sprintf(`,"iat":%d,"exp":%d`, iat, iat+2*86400)), acme.APISecret)
	noIat := hs256(`{"alg":"HS256"}`, claimsJSON(fmt.Sprintf(`,"exp":%d`, iat+3600)), acme.APISecret)
	tests := []struct {
		max   time.Duration
		token string
		ok    bool
	}{
		{0, hour, true},
		{0, twoDays, false},
		{72 * time.Hour, twoDays, true},
		{time.Hour, hour, true},
		{59 * time.Minute, hour, false},
		{59*time.Minute + 30*time.Second, noIat, true}, // exp - now is the limit plus the leeway
		{59 * time.Minute, noIat, false},
	}
	for _, tt := range tests {
		v := &Verifier{Dir: dir, Now: func() time.Time { return t0 }, MaxLifetime: tt.max}
		_, _, err := v.Verify(tt.token)
		if (err == nil) != tt.ok {
			t.Errorf("MaxLifetime %v: Verify: %v; want ok=%v", tt.max, err, tt.ok)
		}
		if err != nil && protocol.AsError(err).Code != protocol.CodeBadToken {
			t.Errorf("MaxLifetime %v: code %v; want bad_token", tt.max, err)
		}
	}
}

// The worked example of docs/protocol.md ("A worked example"). The secret is
// the text an operator configures (here 64 hex digits, like the ones
// --dev prints); the HMAC key is that text's bytes, not the bytes the hex
// digits stand for.
const (
	exampleSecret = "99aba894ded0bd66968940460285fae563bf0fd287d75576fd8724765d5c7a22"
	exampleHeader = `{"alg":"HS256","typ":"JWT","kid":"acme-key"}`
	exampleClaims = `{"org":"acme","sub":"visitor-42","role":"customer","name":"Ada","iat":1772366400,"exp":1772370000}`
	exampleInput  = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImFjbWUta2V5In0.eyJvcmciOiJhY21lIiwic3ViIjoidmlzaXRvci00MiIsInJvbGUiOiJjdXN0b21lciIsIm5hbWUiOiJBZGEiLCJpYXQiOjE3NzIzNjY0MDAsImV4cCI6MTc3MjM3MDAwMH0"
	exampleSig    = "3f7Lb0omcAiAagXUQNdEaJoXrm98L1h3HMsURDVSNiA"
	exampleSigHex = "ddfecb6f4a267008806a05d440d744689a17ae6f7c2f58771ccb144435523620"
	exampleToken  = exampleInput + "." + exampleSig
	// exampleSigDecoded is what an implementer who hex-decodes the secret
	// gets: a signature the server refuses.
	exampleSigDecoded = "nSoCx1HpO19RIcgPjQqCJmI1Fj780Q5vjAXtCgnwPYc"
)

func TestWorkedExample(t *testing.T) {
	input := base64.RawURLEncoding.EncodeToString([]byte(exampleHeader)) + "." + base64.RawURLEncoding.EncodeToString([]byte(exampleClaims))
	if input != exampleInput {
		t.Fatalf("signing input\n%s\nwant\n%s", input, exampleInput)
	}
	mac := hmac.New(sha256.New, []byte(exampleSecret))
	mac.Write([]byte(exampleInput))
	if got := hex.EncodeToString(mac.Sum(nil)); got != exampleSigHex {
		t.Fatalf("signature %s; want %s", got, exampleSigHex)
	}
	if tok := hs256(exampleHeader, exampleClaims, []byte(exampleSecret)); tok != exampleToken {
		t.Fatalf("token\n%s\nwant\n%s", tok, exampleToken)
	}
	orgs := testOrgs()
	orgs[0].APISecret = []byte(exampleSecret)
	dir, err := NewDirectory(orgs)
	if err != nil {
		t.Fatal(err)
	}
	v := &Verifier{Dir: dir, Now: func() time.Time { return time.Unix(1772366400+60, 0) }}
	c, org, err := v.Verify(exampleToken)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if org.ID != "acme" || c.Subject != "visitor-42" || c.Role != protocol.RoleCustomer || c.Name != "Ada" || c.Queue != "" {
		t.Fatalf("claims %+v org %s", c, org.ID)
	}
	// Signed with the bytes the hex digits stand for, the token is a forgery.
	decoded, err := hex.DecodeString(exampleSecret)
	if err != nil {
		t.Fatal(err)
	}
	wrong := hs256(exampleHeader, exampleClaims, decoded)
	if wrong != exampleInput+"."+exampleSigDecoded {
		t.Fatalf("token signed with the decoded secret\n%s\nwant\n%s", wrong, exampleInput+"."+exampleSigDecoded)
	}
	if _, _, err := v.Verify(wrong); err == nil || !strings.Contains(err.Error(), "signature is invalid") {
		t.Fatalf("token signed with the decoded secret: %v; want an invalid signature", err)
	}
}
