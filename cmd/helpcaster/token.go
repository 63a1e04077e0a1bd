package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/helpcaster/helpcaster/signaling/auth"
	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/helpcaster/helpcaster/signaling/routing"
)

// attrFlag collects repeated --attr key=value flags.
type attrFlag map[string]string

func (a attrFlag) String() string {
	parts := make([]string, 0, len(a))
	for k, v := range a {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

func (a attrFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not key=value", v)
	}
	if _, dup := a[k]; dup {
		return fmt.Errorf("attribute %q given twice", k)
	}
	a[k] = val
	return nil
}

// skillFlag collects repeated --skill name=value:level flags.
type skillFlag routing.Skills

func (f skillFlag) String() string {
	var parts []string
	for name, vals := range f {
		for v, lvl := range vals {
			parts = append(parts, fmt.Sprintf("%s=%s:%d", name, v, lvl))
		}
	}
	return strings.Join(parts, ",")
}

func (f skillFlag) Set(v string) error {
	name, rest, ok := strings.Cut(v, "=")
	val, lvl, ok2 := strings.Cut(rest, ":")
	level, err := strconv.Atoi(lvl)
	if !ok || !ok2 || name == "" || val == "" || err != nil {
		return fmt.Errorf("%q is not skill=value:level (like language=de:3)", v)
	}
	if f[name] == nil {
		f[name] = map[string]int{}
	}
	if _, dup := f[name][val]; dup {
		return fmt.Errorf("skill %s=%s given twice", name, val)
	}
	f[name][val] = level
	return nil
}

// tokenOptions are the flags of "helpcaster token".
type tokenOptions struct {
	org, key, secret, secretEnv, config string
	role, sub, name, queue              string
	attrs                               attrFlag
	skills                              skillFlag
	capacity                            int
	ttl                                 time.Duration
}

// runToken implements "helpcaster token": it mints a token the way an
// organization's backend would and prints it on stdout.
func runToken(args []string, env func(string) string, stdout, stderr io.Writer) int {
	tok, err := mintFromArgs(args, env, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "helpcaster: token: %s\n", oneLine(err))
		return 2
	}
	fmt.Fprintln(stdout, tok)
	return 0
}

func mintFromArgs(args []string, env func(string) string, stderr io.Writer) (string, error) {
	o := tokenOptions{attrs: attrFlag{}, skills: skillFlag{}}
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.org, "org", "", "organization id (required)")
	fs.StringVar(&o.key, "key", "", "API key, put in the kid header (optional)")
	fs.StringVar(&o.secret, "secret", "", "API secret (visible to other local users; prefer --secret-env)")
	fs.StringVar(&o.secretEnv, "secret-env", "", "name of the environment variable holding the API secret")
	fs.StringVar(&o.config, "config", "", "read the organization (key and secret) from this serve config file")
	fs.StringVar(&o.role, "role", protocol.RoleCustomer, "role: customer, agent or supervisor")
	fs.StringVar(&o.sub, "sub", "", "subject id: the org's own id for the user (required)")
	fs.StringVar(&o.name, "name", "", "display name shown to the other side")
	fs.StringVar(&o.queue, "queue", "", "customer: queue to join; agent: queue to serve; unused by supervisors (default: the org's default queue)")
	fs.Var(o.attrs, "attr", "customer: routing attribute key=value (repeatable)")
	fs.Var(o.skills, "skill", "agent: skill=value:level, like language=de:3 (repeatable)")
	fs.IntVar(&o.capacity, "capacity", 0, "agent: calls at once (default 1)")
	fs.DurationVar(&o.ttl, "ttl", time.Hour, "token lifetime (at most 24h; servers refuse tokens living longer than their --token-max-lifetime, 24h by default)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printTokenUsage(stderr, fs)
			return "", flag.ErrHelp
		}
		return "", fmt.Errorf("%w (see 'helpcaster token --help')", err)
	}
	if fs.NArg() > 0 {
		return "", fmt.Errorf("unexpected argument %q (see 'helpcaster token --help')", fs.Arg(0))
	}
	if o.org == "" {
		return "", errors.New("--org is required")
	}
	if o.sub == "" {
		return "", errors.New("--sub is required")
	}
	org, err := o.resolveOrg(env)
	if err != nil {
		return "", err
	}
	c := auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: o.sub},
		Role:             o.role,
		Name:             o.name,
		Queue:            o.queue,
	}
	if len(o.attrs) > 0 {
		c.Attrs = o.attrs
	}
	if len(o.skills) > 0 {
		c.Skills = routing.Skills(o.skills)
	}
	c.Capacity = o.capacity
	tok, err := auth.Mint(org, c, o.ttl, time.Now())
	if err != nil {
		return "", err
	}
	return tok, nil
}

// resolveOrg finds the organization in the config file, or builds it from
// --org, --key and the secret.
func (o *tokenOptions) resolveOrg(env func(string) string) (*auth.Org, error) {
	if o.config != "" {
		if o.secret != "" || o.secretEnv != "" || o.key != "" {
			return nil, errors.New("give either --config or --key/--secret/--secret-env, not both")
		}
		cf, err := readConfigFile(o.config, env)
		if err != nil {
			return nil, err
		}
		for i := range cf.orgs {
			if cf.orgs[i].ID == o.org {
				return &cf.orgs[i], nil
			}
		}
		return nil, fmt.Errorf("organization %q is not in %s", o.org, o.config)
	}
	if !auth.ValidName(o.org) {
		return nil, fmt.Errorf("--org %q is not a valid organization id", o.org)
	}
	secret := o.secret
	switch {
	case o.secret != "" && o.secretEnv != "":
		return nil, errors.New("give --secret or --secret-env, not both")
	case o.secretEnv != "":
		secret = env(o.secretEnv)
		if secret == "" {
			return nil, fmt.Errorf("--secret-env: environment variable %s is empty or unset", o.secretEnv)
		}
	case o.secret == "":
		return nil, errors.New("a secret is required: --secret-env NAME, --secret or --config FILE")
	}
	queue := o.queue
	if queue == "" {
		queue = "default" // the server's default queue; the token leaves queue empty
	}
	return &auth.Org{ID: o.org, APIKey: o.key, APISecret: []byte(secret), Queues: []auth.Queue{{Name: queue}}}, nil
}

func printTokenUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `Usage: helpcaster token --org ID --sub SUBJECT [flags]

Mints an HS256 token as an organization's backend would, and prints it.
The secret comes from --secret-env NAME, --secret, or the org in --config FILE.

Example:
  ACME_SECRET=... helpcaster token --org acme --key acme-key --secret-env ACME_SECRET \
      --role customer --sub visitor-42 --name Ada --attr language=en --ttl 10m
  helpcaster token --org acme --config helpcaster.yaml --role agent --sub agent-7 \
      --name Bea --skill language=de:3 --skill language=en:1 --capacity 2

Flags:
`)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}
