// Tests of the key rules: a table, and a fuzz target (FuzzValidateKey) that
// checks what every accepted key guarantees.
package objstore_test

import (
	"errors"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/helpcaster/helpcaster/objstore"
	"github.com/helpcaster/helpcaster/objstore/objstoretest"
)

func TestValidateKey(t *testing.T) {
	good := []string{"a", "A-Z_a.z=0", "org-1/2026/12/07/call-1/agent.webm", "a./b..c/d.", strings.Repeat("x", objstore.MaxSegmentLen)}
	for _, k := range good {
		if err := objstore.ValidateKey(k); err != nil {
			t.Errorf("ValidateKey(%q) = %v, want nil", k, err)
		}
	}
	for _, k := range objstoretest.BadKeys {
		err := objstore.ValidateKey(k)
		if !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("ValidateKey(%q) = %v, want ErrInvalidKey", k, err)
		}
	}
	for _, p := range []string{"", "a", "a/", "a/b", "a/b/"} {
		if err := objstore.ValidatePrefix(p); err != nil {
			t.Errorf("ValidatePrefix(%q) = %v, want nil", p, err)
		}
	}
	for _, p := range objstoretest.BadPrefixes {
		if err := objstore.ValidatePrefix(p); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("ValidatePrefix(%q) = %v, want ErrInvalidKey", p, err)
		}
	}
	// The error says what is wrong, and stays short for a long key.
	err := objstore.ValidateKey("a/../b")
	if err == nil || !strings.Contains(err.Error(), "begins with '.'") {
		t.Errorf("ValidateKey(a/../b) = %v, want it to name the '.' segment", err)
	}
	if err := objstore.ValidateKey(strings.Repeat("y", 5000)); err == nil || len(err.Error()) > 300 {
		t.Errorf("ValidateKey(5000 bytes) error is %d bytes long", len(err.Error()))
	}
}

func FuzzValidateKey(f *testing.F) {
	for _, k := range append([]string{"a", "a/b", "org/2026/12/07/c/x.webm", "a..b", "a/.b"}, objstoretest.BadKeys...) {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		err := objstore.ValidateKey(key)
		if err != nil {
			if !errors.Is(err, objstore.ErrInvalidKey) {
				t.Fatalf("ValidateKey(%q) = %v, not ErrInvalidKey", key, err)
			}
			return
		}
		// What an accepted key guarantees, whichever store it reaches.
		if len(key) == 0 || len(key) > objstore.MaxKeyLen {
			t.Fatalf("accepted key of %d bytes", len(key))
		}
		if !filepath.IsLocal(key) || path.Clean(key) != key || filepath.Clean(key) != key {
			t.Fatalf("accepted key %q is not a clean local path", key)
		}
		for _, seg := range strings.Split(key, "/") {
			if seg == "" || seg[0] == '.' || len(seg) > objstore.MaxSegmentLen {
				t.Fatalf("accepted key %q has segment %q", key, seg)
			}
		}
		if strings.ContainsAny(key, "\\\x00 :") || strings.IndexFunc(key, func(r rune) bool { return r > 0x7e || r < 0x21 }) >= 0 {
			t.Fatalf("accepted key %q has a forbidden character", key)
		}
		if objstore.ValidatePrefix(key) != nil || objstore.ValidatePrefix(key+"/") != nil {
			t.Fatalf("accepted key %q is not a valid prefix", key)
		}
	})
}
