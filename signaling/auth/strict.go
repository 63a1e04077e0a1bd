package auth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/helpcaster/helpcaster/internal/jsonkeys"
	"github.com/helpcaster/helpcaster/signaling/protocol"
)

// This file holds the checks on a token's raw JSON that the JWT library
// does not make: it decodes duplicate keys (the last wins), reads a
// NumericDate from a JSON string ("1e12"), and ignores crit and the key
// source headers. checkRaw runs before the library parses the token, on
// the same bytes, so both see one document.

// MaxNumericDate is the latest exp, nbf or iat accepted:
// 9999-12-31T23:59:59Z. Larger values overflow the library's conversion to
// a time (1e300 became a date in the past).
const MaxNumericDate = 253402300799

// segment decodes one base64url part of a compact JWS the way the
// library's strict decoding does: no padding, no stray bits.
func segment(s string) ([]byte, error) {
	return base64.RawURLEncoding.Strict().DecodeString(s)
}

// checkRaw checks the header and claims of a compact JWS before the JWT
// library parses them: neither may name a key twice in one object; the
// header must say alg HS256, may say typ JWT, and may carry no crit and no
// key source; exp, nbf and iat, when present, must be JSON numbers from 0
// to MaxNumericDate. Every error is bad_token; messages name keys, never
// values.
func checkRaw(token string) *protocol.Error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return protocol.Errorf(protocol.CodeBadToken, "token is malformed: it must be three base64url parts joined by dots")
	}
	header, err := segment(parts[0])
	if err != nil {
		return protocol.Errorf(protocol.CodeBadToken, "token is malformed: the header is not base64url without padding")
	}
	claims, err := segment(parts[1])
	if err != nil {
		return protocol.Errorf(protocol.CodeBadToken, "token is malformed: the claims are not base64url without padding")
	}
	h, pe := object("the header", header)
	if pe != nil {
		return pe
	}
	if pe := checkHeader(h); pe != nil {
		return pe
	}
	c, pe := object("the claims set", claims)
	if pe != nil {
		return pe
	}
	return checkDates(c)
}

// object parses one JSON object with unique keys into its members.
func object(what string, data []byte) (map[string]json.RawMessage, *protocol.Error) {
	if err := jsonkeys.Unique(data); err != nil {
		var dup *jsonkeys.DuplicateError
		if errors.As(err, &dup) {
			return nil, protocol.Errorf(protocol.CodeBadToken, "token is malformed: a key%s appears twice in %s; every key must appear once", keyName(dup.Key), what)
		}
		return nil, protocol.Errorf(protocol.CodeBadToken, "token is malformed: %s is not JSON", what)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil || m == nil {
		return nil, protocol.Errorf(protocol.CodeBadToken, "token is malformed: %s is not a JSON object", what)
	}
	return m, nil
}

// keyName is ` "KEY"` for a key short and plain enough to name in an
// error message, else "".
func keyName(k string) string {
	if len(k) == 0 || len(k) > 32 {
		return ""
	}
	for i := 0; i < len(k); i++ {
		if k[i] <= ' ' || k[i] > '~' {
			return ""
		}
	}
	return " " + strconv.Quote(k)
}

// checkHeader checks the header members: alg, typ, crit and the key
// sources. kid is checked against the organization once it is known.
func checkHeader(h map[string]json.RawMessage) *protocol.Error {
	if alg, ok := jsonString(h["alg"]); !ok || alg != algorithm {
		return protocol.Errorf(protocol.CodeBadToken, "token must be signed with %s (header alg)", algorithm)
	}
	if raw, present := h["typ"]; present {
		typ, ok := jsonString(raw)
		if !ok || !strings.EqualFold(typ, "JWT") && !strings.EqualFold(typ, "application/jwt") {
			return protocol.Errorf(protocol.CodeBadToken, `token header typ must be "JWT" when present`)
		}
	}
	if raw, present := h["crit"]; present {
		var crit []string
		if err := json.Unmarshal(raw, &crit); err != nil || len(crit) == 0 {
			return protocol.Errorf(protocol.CodeBadToken, "token header crit is malformed: it must be a non-empty array of names")
		}
		return protocol.Errorf(protocol.CodeBadToken, "token header crit lists extensions this server does not support (it supports none)")
	}
	// These name a key or certificate to verify with. HelpCaster verifies
	// only with the organization's secret and never fetches or trusts a key
	// a token brings, so a token that names one is refused: whoever made it
	// expects a verification that will not happen.
	for _, name := range []string{"jku", "jwk", "x5u", "x5c", "x5t", "x5t#S256"} {
		if _, present := h[name]; present {
			return protocol.Errorf(protocol.CodeBadToken, "token header %s names a key; tokens are verified only with the organization's API secret, so leave it out", name)
		}
	}
	if raw, present := h["kid"]; present {
		if _, ok := jsonString(raw); !ok {
			return protocol.Errorf(protocol.CodeBadToken, "token header kid must be a string")
		}
	}
	return nil
}

// checkDates checks that exp, nbf and iat, when present, are JSON numbers
// from 0 to MaxNumericDate. A JSON string holding a number ("1e12") is
// refused: encoding/json would read it into the library's NumericDate.
func checkDates(c map[string]json.RawMessage) *protocol.Error {
	for _, name := range []string{"exp", "nbf", "iat"} {
		raw, present := c[name]
		if !present {
			continue
		}
		if len(raw) == 0 || raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
			return protocol.Errorf(protocol.CodeBadToken, "token claim %s must be a JSON number of seconds (NumericDate)", name)
		}
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil || f < 0 || f > MaxNumericDate {
			return protocol.Errorf(protocol.CodeBadToken, "token claim %s is out of range (0 to %d seconds)", name, MaxNumericDate)
		}
	}
	return nil
}

// jsonString returns the string a JSON value holds, if it is a string.
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}
