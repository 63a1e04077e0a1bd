// Package auth holds the organizations (tenants) a HelpCaster server knows
// and the tokens their backends mint for visitors and agents.
//
// A token is an HS256 JWT signed with the organization's API secret. Its
// "org" claim names the organization; its optional "kid" header names the
// organization's public API key. See Mint and Verifier.
package auth

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/helpcaster/helpcaster/signaling/routing"
)

// Limits on organization settings.
const (
	// DefaultQueueMaxLength is the queue length used when Queue.MaxLength is 0.
	DefaultQueueMaxLength = 100
	// MaxQueueMaxLength is the largest accepted Queue.MaxLength.
	MaxQueueMaxLength = 1_000_000
	// MinSecretLen is the shortest accepted API secret, in bytes.
	MinSecretLen = 32
	// MaxAPIKeyLen is the longest accepted API key, in bytes.
	MaxAPIKeyLen = 128
	// MaxIDLen is the longest organization id or queue name.
	MaxIDLen = 63
)

// Queue is one waiting line of an organization.
type Queue struct {
	Name string
	// MaxLength is the most customers that may wait; 0 means
	// DefaultQueueMaxLength.
	MaxLength int
	// Policy holds the routing rules: which agents may take which customers,
	// and which customers go first. nil: any agent, first come first served.
	Policy *routing.Policy
	// Overflow moves customers who have waited Overflow.After to the queue
	// Overflow.To. A zero After means no overflow.
	Overflow Overflow
	// OfferTimeout is how long an agent has to accept an offered customer.
	// 0: assignments start the call at once, with no offer.
	OfferTimeout time.Duration
	// Record says which of the queue's calls are recorded.
	Record Record
}

// Record is a queue's recording policy.
type Record int

// Recording policies.
const (
	RecordOff     Record = iota // no call is recorded (the default)
	RecordAlways                // every call is recorded
	RecordConsent               // a call is recorded when the customer's token carries record_consent
)

// ParseRecord reads a recording policy as the config file writes it:
// off, always or consent.
func ParseRecord(s string) (Record, error) {
	switch s {
	case "off", "":
		return RecordOff, nil
	case "always":
		return RecordAlways, nil
	case "consent":
		return RecordConsent, nil
	}
	return RecordOff, fmt.Errorf("must be off, always or consent")
}

// Records reports whether a call of a customer who consented (or not) is
// recorded under r.
func (r Record) Records(consent bool) bool {
	return r == RecordAlways || (r == RecordConsent && consent)
}

// Overflow sends customers who have waited After to the queue To.
type Overflow struct {
	After time.Duration
	To    string
}

// MaxOfferTimeout is the longest Queue.OfferTimeout.
const MaxOfferTimeout = 5 * time.Minute

// Org is one organization (tenant).
type Org struct {
	// ID matches [a-z0-9][a-z0-9-_]{0,62}. Tokens name it in their "org" claim.
	ID string
	// APIKey is the public key id; tokens may carry it in the JWT "kid" header.
	APIKey string
	// APISecret is the HS256 secret, at least MinSecretLen bytes.
	APISecret []byte
	// Origins are the web origins allowed to connect for this organization:
	// an exact origin "https://shop.example.com[:port]", a wildcard
	// "https://*.example.com[:port]" matching one or more subdomain levels
	// (but not example.com itself), or "*" for any origin (development only).
	Origins []string
	// Queues has at least one entry; the first is the default queue.
	Queues []Queue
}

// AllowsOrigin reports whether a browser page at origin (the value of the
// HTTP Origin header) may connect for this organization. An empty origin
// means a non-browser client (an organization backend, a Go bot) and is
// always allowed. Scheme, host and port are compared case-insensitively;
// a default port (80 for http, 443 for https) may be written or omitted.
// The opaque origin "null" is allowed only by "*".
func (o *Org) AllowsOrigin(origin string) bool {
	if origin == "" {
		return true
	}
	if slices.Contains(o.Origins, "*") {
		return true
	}
	got, err := parseOrigin(origin, false)
	if err != nil {
		return false
	}
	for _, allowed := range o.Origins {
		want, err := parseOrigin(allowed, true)
		if err != nil {
			continue
		}
		if want.matches(got) {
			return true
		}
	}
	return false
}

// Queue returns the named queue; "" means the default (first) queue. A zero
// MaxLength in the result is replaced by DefaultQueueMaxLength.
func (o *Org) Queue(name string) (Queue, bool) {
	if len(o.Queues) == 0 {
		return Queue{}, false
	}
	q := o.Queues[0]
	if name != "" {
		i := slices.IndexFunc(o.Queues, func(q Queue) bool { return q.Name == name })
		if i < 0 {
			return Queue{}, false
		}
		q = o.Queues[i]
	}
	if q.MaxLength == 0 {
		q.MaxLength = DefaultQueueMaxLength
	}
	return q, true
}

// validate checks one organization on its own.
func (o *Org) validate() error {
	if err := checkName(o.ID); err != nil {
		return fmt.Errorf("id: %w", err)
	}
	if o.APIKey == "" {
		return errors.New("api key is empty")
	}
	if len(o.APIKey) > MaxAPIKeyLen {
		return fmt.Errorf("api key is longer than %d bytes", MaxAPIKeyLen)
	}
	for _, r := range o.APIKey {
		if r <= ' ' || r > '~' {
			return errors.New("api key must be printable ASCII without spaces")
		}
	}
	if len(o.APISecret) < MinSecretLen {
		return fmt.Errorf("api secret is %d bytes; it must be at least %d", len(o.APISecret), MinSecretLen)
	}
	if len(o.Queues) == 0 {
		return errors.New("no queues; at least one is required")
	}
	seen := make(map[string]bool, len(o.Queues))
	for i, q := range o.Queues {
		if err := checkName(q.Name); err != nil {
			return fmt.Errorf("queue %d name: %w", i+1, err)
		}
		if seen[q.Name] {
			return fmt.Errorf("queue %q is listed twice", q.Name)
		}
		seen[q.Name] = true
		if q.MaxLength < 0 || q.MaxLength > MaxQueueMaxLength {
			return fmt.Errorf("queue %q max length %d is out of range (0-%d, 0 = %d)", q.Name, q.MaxLength, MaxQueueMaxLength, DefaultQueueMaxLength)
		}
		if q.Policy != nil {
			if err := q.Policy.Validate(); err != nil {
				return fmt.Errorf("queue %q routing: %w", q.Name, err)
			}
		}
		if q.OfferTimeout != 0 && (q.OfferTimeout < time.Second || q.OfferTimeout > MaxOfferTimeout || q.OfferTimeout%time.Second != 0) {
			return fmt.Errorf("queue %q offer timeout %v is out of range (0 for none, or whole seconds from 1s to %v)", q.Name, q.OfferTimeout, MaxOfferTimeout)
		}
	}
	if err := o.checkOverflow(); err != nil {
		return err
	}
	for _, origin := range o.Origins {
		if origin == "*" {
			continue
		}
		if _, err := parseOrigin(origin, true); err != nil {
			return fmt.Errorf("origin %q: %w", origin, err)
		}
	}
	return nil
}

// checkOverflow checks that overflow targets exist and that no chain of
// overflows comes back to where it started.
func (o *Org) checkOverflow() error {
	next := make(map[string]string, len(o.Queues))
	for _, q := range o.Queues {
		switch {
		case q.Overflow.After < 0:
			return fmt.Errorf("queue %q overflow: after must not be negative", q.Name)
		case q.Overflow.After == 0 && q.Overflow.To != "":
			return fmt.Errorf("queue %q overflow: give how long customers wait before they overflow (after)", q.Name)
		case q.Overflow.After == 0:
			continue
		case q.Overflow.To == q.Name:
			return fmt.Errorf("queue %q overflows into itself", q.Name)
		case !slices.ContainsFunc(o.Queues, func(x Queue) bool { return x.Name == q.Overflow.To }):
			return fmt.Errorf("queue %q overflows into %q, which the organization does not have", q.Name, q.Overflow.To)
		}
		next[q.Name] = q.Overflow.To
	}
	for start := range next {
		at := start
		for range len(next) {
			var ok bool
			if at, ok = next[at]; !ok {
				break
			}
			if at == start {
				return fmt.Errorf("queue %q overflows in a circle back to itself", start)
			}
		}
	}
	return nil
}

// clone returns a deep copy of o with queue defaults filled in.
func (o *Org) clone() *Org {
	c := *o
	c.APISecret = slices.Clone(o.APISecret)
	c.Origins = slices.Clone(o.Origins)
	c.Queues = slices.Clone(o.Queues)
	for i := range c.Queues {
		c.Queues[i].Policy = o.Queues[i].Policy.Clone()
		if c.Queues[i].MaxLength == 0 {
			c.Queues[i].MaxLength = DefaultQueueMaxLength
		}
	}
	return &c
}

// ValidName reports whether s is a valid organization id or queue name:
// [a-z0-9][a-z0-9-_]{0,62}.
func ValidName(s string) bool { return checkName(s) == nil }

func checkName(s string) error {
	if s == "" {
		return errors.New("is empty")
	}
	if len(s) > MaxIDLen {
		return fmt.Errorf("is longer than %d characters", MaxIDLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '-' || c == '_') && i > 0:
		default:
			return fmt.Errorf("%q is invalid; use lower-case letters, digits, '-' and '_', starting with a letter or digit", s)
		}
	}
	return nil
}

// Directory is the set of organizations a server knows. It is immutable
// after NewDirectory and safe for concurrent use. The *Org values it hands
// out are shared and must not be modified.
type Directory struct {
	byID   map[string]*Org
	sorted []*Org
}

// NewDirectory validates orgs and builds a Directory from a deep copy of
// them. The error names the offending organization and the problem.
func NewDirectory(orgs []Org) (*Directory, error) {
	d := &Directory{byID: make(map[string]*Org, len(orgs))}
	keys := make(map[string]string, len(orgs))
	for i := range orgs {
		o := &orgs[i]
		name := fmt.Sprintf("org %q", o.ID)
		if o.ID == "" {
			name = fmt.Sprintf("org #%d", i+1)
		}
		if err := o.validate(); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if _, dup := d.byID[o.ID]; dup {
			return nil, fmt.Errorf("%s: id is used by another organization", name)
		}
		if other, dup := keys[o.APIKey]; dup {
			return nil, fmt.Errorf("%s: api key is also used by org %q", name, other)
		}
		keys[o.APIKey] = o.ID
		c := o.clone()
		d.byID[o.ID] = c
		d.sorted = append(d.sorted, c)
	}
	slices.SortFunc(d.sorted, func(a, b *Org) int { return strings.Compare(a.ID, b.ID) })
	return d, nil
}

// Org returns the organization with the given id.
func (d *Directory) Org(id string) (*Org, bool) {
	if d == nil {
		return nil, false
	}
	o, ok := d.byID[id]
	return o, ok
}

// Orgs returns every organization, sorted by id. The slice is the caller's.
func (d *Directory) Orgs() []*Org {
	if d == nil {
		return nil
	}
	return slices.Clone(d.sorted)
}

// SharedSecrets returns the ids of organizations that share one API secret,
// one sorted group per secret, groups sorted by their first id. Any
// organization in a group can mint tokens that name another (the org claim
// picks the organization, and the other's secret verifies them), so the
// tenants are not isolated. NewDirectory allows it; the server warns.
func (d *Directory) SharedSecrets() [][]string {
	if d == nil {
		return nil
	}
	bySecret := make(map[string][]string, len(d.sorted))
	for _, o := range d.sorted { // sorted by id, so each group is too
		bySecret[string(o.APISecret)] = append(bySecret[string(o.APISecret)], o.ID)
	}
	var groups [][]string
	for _, ids := range bySecret {
		if len(ids) > 1 {
			groups = append(groups, ids)
		}
	}
	slices.SortFunc(groups, func(a, b []string) int { return strings.Compare(a[0], b[0]) })
	return groups
}

// origin is a parsed web origin, normalized: lower case, explicit port.
type origin struct {
	scheme   string
	host     string // without brackets; for a wildcard, the suffix after "*." (e.g. "example.com")
	port     string
	wildcard bool
}

func (a origin) matches(b origin) bool {
	if a.scheme != b.scheme || a.port != b.port || b.wildcard {
		return false
	}
	if !a.wildcard {
		return a.host == b.host
	}
	return strings.HasSuffix(b.host, "."+a.host) && len(b.host) > len(a.host)+1
}

// parseOrigin parses "scheme://host[:port]" with scheme http or https and
// nothing after the authority. allowWildcard permits a leading "*." label.
func parseOrigin(s string, allowWildcard bool) (origin, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return origin{}, errors.New(`must look like "https://host[:port]"`)
	}
	var o origin
	switch strings.ToLower(scheme) {
	case "http":
		o.scheme, o.port = "http", "80"
	case "https":
		o.scheme, o.port = "https", "443"
	default:
		return origin{}, errors.New("scheme must be http or https")
	}
	if rest == "" {
		return origin{}, errors.New("host is missing")
	}
	if strings.ContainsAny(rest, "/?#@\\ ") {
		return origin{}, errors.New("must be scheme://host[:port] with no user, path, query or fragment")
	}
	host, port := rest, ""
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return origin{}, errors.New("bracketed host is not closed")
		}
		host = rest[1:end]
		if ip := net.ParseIP(host); ip == nil || ip.To4() != nil {
			return origin{}, errors.New("bracketed host must be an IPv6 address")
		}
		switch after := rest[end+1:]; {
		case after == "":
		case after[0] == ':':
			port = after[1:]
		default:
			return origin{}, errors.New("unexpected text after the bracketed host")
		}
	} else if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		host, port = rest[:i], rest[i+1:]
		if strings.Contains(host, ":") {
			return origin{}, errors.New("IPv6 hosts must be in brackets")
		}
	}
	if port != "" || strings.HasSuffix(rest, ":") {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strings.ContainsAny(port, "+-") {
			return origin{}, fmt.Errorf("port %q is not a port (1-65535)", port)
		}
		o.port = strconv.Itoa(n)
	}
	host = strings.ToLower(host)
	if allowWildcard && strings.HasPrefix(host, "*.") {
		o.wildcard = true
		host = host[2:]
	}
	if err := checkHost(host); err != nil {
		return origin{}, err
	}
	if o.wildcard && net.ParseIP(host) != nil {
		return origin{}, errors.New("a wildcard needs a domain name, not an IP address")
	}
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	}
	o.host = host
	return o, nil
}

// checkHost accepts an IP address or a DNS name of letters, digits and '-'
// (punycode for international names).
func checkHost(h string) error {
	if h == "" {
		return errors.New("host is missing")
	}
	if net.ParseIP(h) != nil {
		return nil
	}
	if len(h) > 253 {
		return errors.New("host name is too long")
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("host %q is not a valid name", h)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("host %q is not a valid name", h)
			}
		}
	}
	return nil
}
