package main

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/helpcaster/helpcaster/cluster"
	"github.com/helpcaster/helpcaster/internal/confparse"
)

// This file holds the parsers of setting values, one per kind of value
// (address, port, duration, URL, ...). Each parses the text a flag, an
// environment variable or the config file gives and stores it in the
// Config field it is handed. Their errors describe the value; the caller
// names the setting.

func setHostPort(dst *string, v string) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf("%q is not host:port (like 127.0.0.1:8080 or :8080)", v)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q is not a port (0-65535)", port)
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Errorf("%q is not a valid host", host)
	}
	*dst = v
	return nil
}

func setPublicURL(c *Config, v string) error {
	if v == "" {
		c.PublicURL, c.publicURLSet = "", false
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q is not an http(s) URL like https://support.example.com", v)
	}
	c.PublicURL, c.publicURLSet = strings.TrimRight(v, "/"), true
	return nil
}

// setRedisURL accepts a redis:// or rediss:// URL with a host (or unix://
// with a socket path). The error never repeats the URL: it may hold a
// password.
func setRedisURL(dst *string, v string) error {
	if v == "" {
		*dst = ""
		return nil
	}
	u, err := url.Parse(v)
	ok := err == nil && ((u.Scheme == "redis" || u.Scheme == "rediss") && u.Host != "" || u.Scheme == "unix" && u.Path != "")
	if !ok || u.Fragment != "" {
		return errors.New("not a Redis URL like redis://host:6379/0 (or rediss://, unix:///path)")
	}
	*dst = v
	return nil
}

func setNodeID(dst *string, v string) error {
	if err := cluster.ValidateID(v); err != nil {
		return err
	}
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%q: use letters, digits, '.', '_' and '-'", v)
		}
	}
	*dst = v
	return nil
}

func setPortRange(dst *[2]int, v string) error {
	lo, hi, ok := strings.Cut(v, "-")
	a, err1 := strconv.Atoi(lo)
	b, err2 := strconv.Atoi(hi)
	if !ok || err1 != nil || err2 != nil || a < 1 || b > 65535 || a > b {
		return fmt.Errorf("%q is not a port range MIN-MAX (1-65535, MIN not above MAX)", v)
	}
	*dst = [2]int{a, b}
	return nil
}

func setPrefixList(dst *[]string, v string) error {
	var out []string
	for part := range strings.SplitSeq(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			a, aerr := netip.ParseAddr(part)
			if aerr != nil {
				return fmt.Errorf("%q is not an address prefix (like 10.0.0.0/8) or address", part)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked().String())
	}
	*dst = out
	return nil
}

func setTURNURLs(dst *[]string, v string) error {
	var out []string
	for part := range strings.SplitSeq(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if !strings.HasPrefix(part, "turn:") && !strings.HasPrefix(part, "turns:") {
			return fmt.Errorf("%q is not a turn: or turns: URL", part)
		}
		out = append(out, part)
	}
	*dst = out
	return nil
}

func setEnum(dst *string, v string, options ...string) error {
	if !slices.Contains(options, v) {
		return fmt.Errorf("%q is not one of %s", v, strings.Join(options, ", "))
	}
	*dst = v
	return nil
}

func setLevel(dst *slog.Level, v string) error {
	var s string
	if err := setEnum(&s, strings.ToLower(v), "debug", "info", "warn", "error"); err != nil {
		return err
	}
	return dst.UnmarshalText([]byte(s))
}

func setBool(dst *bool, v string) error {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return fmt.Errorf("%q is not a boolean (true or false)", v)
	}
	*dst = b
	return nil
}

func setIP(dst *string, v string) error {
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		return fmt.Errorf("%q is not an IP address", v)
	}
	*dst = a.String()
	return nil
}

func setIPList(dst *[]string, v string) error {
	var ips []string
	for part := range strings.SplitSeq(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		a, err := netip.ParseAddr(part)
		if err != nil || a.Zone() != "" {
			return fmt.Errorf("%q is not an IP address", part)
		}
		if a.IsUnspecified() || a.IsMulticast() {
			return fmt.Errorf("%s cannot be announced", part)
		}
		ips = append(ips, a.String())
	}
	*dst = ips
	return nil
}

func setPort(dst *int, v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%s is not a port (1-65535)", v)
	}
	*dst = n
	return nil
}

// setPortOrOff is setPort that also takes 0, meaning the listener is off.
func setPortOrOff(dst *int, v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%s is not a port (1-65535, or 0 for off)", v)
	}
	*dst = n
	return nil
}

func setInt(dst *int, v string, lo, hi int) error {
	n, err := confparse.Int(v, lo, hi)
	if err != nil {
		return err
	}
	*dst = n
	return nil
}

func setRate(dst *float64, v string) error {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("%q is not a number", v)
	}
	if f <= 0 || f > 100_000 {
		return fmt.Errorf("%s is out of range (more than 0, at most 100000)", v)
	}
	*dst = f
	return nil
}

func setDuration(dst *time.Duration, v string, zeroOK bool) error {
	d, err := confparse.Duration(v, zeroOK)
	if err != nil {
		return err
	}
	*dst = d
	return nil
}
