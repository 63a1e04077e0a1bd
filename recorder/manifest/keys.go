// The object keys of a recording. Everything of one call is under
// {org}/{yyyy}/{mm}/{dd}/{call}/, the date being the call's start in UTC:
// an organization's recordings share one prefix, which is what access and
// erasure are scoped by. Only the organization's own id and the call's id
// appear; no name, subject or address does.

package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// maxSegment is the longest key segment an object store takes.
const maxSegment = 255

// Names of a call's objects under its prefix.
const (
	ManifestName   = "manifest.json"
	TranscriptName = "chat.jsonl"
)

// CallPrefix is the key prefix (without a trailing '/') of call's objects
// in org, the call having started at start.
func CallPrefix(org, call string, start time.Time) string {
	d := start.UTC()
	return fmt.Sprintf("%s/%04d/%02d/%02d/%s", Segment(org), d.Year(), int(d.Month()), d.Day(), Segment(call))
}

// OrgPrefix is the key prefix (without a trailing '/') of all of org's
// recordings.
func OrgPrefix(org string) string { return Segment(org) }

// MediaName is the object name of a participant's media file.
func MediaName(role, ext string) string { return Segment(role) + "." + ext }

// Segment encodes an id as one key segment: bytes other than ASCII
// letters, digits, '.', '_' and '-' become "=XX" (hex), and so does a
// leading '.', so that different ids never share a segment and none is
// hidden or relative. An id that would encode to more than maxSegment
// bytes becomes "=h" and the SHA-256 of the id in hex.
func Segment(id string) string {
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		c := id[i]
		plain := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '_' || c == '-' || (c == '.' && i > 0)
		if plain {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "=%02X", c)
		}
	}
	if b.Len() == 0 || b.Len() > maxSegment {
		sum := sha256.Sum256([]byte(id))
		return "=h" + hex.EncodeToString(sum[:])
	}
	return b.String()
}
