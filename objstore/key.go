// This file holds the key rules, the same for every store. It has no state.

package objstore

import (
	"fmt"
	"strings"
)

const (
	// MaxKeyLen is the longest key in bytes: S3's limit is 1024, and
	// S3Store puts its prefix (at most MaxPrefixLen bytes and a '/') before
	// every key, so that every valid key fits under every valid prefix.
	MaxKeyLen = 768
	// MaxPrefixLen is the longest S3Config.Prefix, after trimming '/'.
	MaxPrefixLen = 1024 - MaxKeyLen - 1
	// MaxSegmentLen is the longest segment of a key in bytes (a file
	// name's limit on common file systems).
	MaxSegmentLen = 255
)

// ValidateKey reports whether key is a valid object key: 1 to MaxKeyLen
// bytes of '/'-separated segments, each a run of 1 to MaxSegmentLen bytes
// of [A-Za-z0-9._=-] that does not begin with '.' (so no "." or ".." segment, and no hidden
// names: the local store keeps its own files under names that begin with
// '.'). A key therefore has no leading, trailing or doubled '/', no
// backslash, no NUL and nothing outside ASCII. The error wraps
// ErrInvalidKey.
func ValidateKey(key string) error {
	if reason := keyProblem(key); reason != "" {
		return fmt.Errorf("%w %s: %s", ErrInvalidKey, quoteKey(key), reason)
	}
	return nil
}

// ValidatePrefix reports whether prefix may be given to List or ListUploads:
// empty (everything), or a valid key, or a valid key followed by '/'. The
// error wraps ErrInvalidKey.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if reason := keyProblem(strings.TrimSuffix(prefix, "/")); reason != "" {
		return fmt.Errorf("%w: prefix %s: %s", ErrInvalidKey, quoteKey(prefix), reason)
	}
	return nil
}

// keyProblem says what is wrong with key, or "" when nothing is.
func keyProblem(key string) string {
	switch {
	case key == "":
		return "empty"
	case len(key) > MaxKeyLen:
		return fmt.Sprintf("longer than %d bytes", MaxKeyLen)
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" {
			return "empty segment (leading, trailing or doubled '/')"
		}
		if len(seg) > MaxSegmentLen {
			return fmt.Sprintf("segment longer than %d bytes", MaxSegmentLen)
		}
		if seg[0] == '.' {
			return "segment begins with '.'"
		}
		for i := 0; i < len(seg); i++ {
			if !keyByte(seg[i]) {
				return fmt.Sprintf("byte %q not allowed (only A-Z a-z 0-9 . _ = - and '/' between segments)", seg[i])
			}
		}
	}
	return ""
}

func keyByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == '=' || c == '-'
}

// quoteKey quotes a key for an error message, shortened when long.
func quoteKey(key string) string {
	const max = 80
	if len(key) > max {
		return fmt.Sprintf("%q... (%d bytes)", key[:max], len(key))
	}
	return fmt.Sprintf("%q", key)
}
