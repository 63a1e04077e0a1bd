package manifest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/helpcaster/helpcaster/objstore"
)

func TestCallPrefix(t *testing.T) {
	start := time.Date(2026, 12, 7, 23, 59, 59, 0, time.FixedZone("east", 3*3600)) // 20:59 UTC
	cases := []struct{ org, call, want string }{
		{"acme", "aSghnDW1_JcCAp2O", "acme/2026/12/07/aSghnDW1_JcCAp2O"},
		{"ac/me", "c1", "ac=2Fme/2026/12/07/c1"},
		{"..", "c1", "=2E./2026/12/07/c1"},
		{".hidden", "c.1", "=2Ehidden/2026/12/07/c.1"},
		{"a=b", "c", "a=3Db/2026/12/07/c"},
		{"é", "c", "=C3=A9/2026/12/07/c"},
	}
	for _, c := range cases {
		got := CallPrefix(c.org, c.call, start)
		if got != c.want {
			t.Errorf("CallPrefix(%q, %q) = %q, want %q", c.org, c.call, got, c.want)
		}
		if err := objstore.ValidateKey(got + "/" + ManifestName); err != nil {
			t.Errorf("CallPrefix(%q, %q): %v", c.org, c.call, err)
		}
	}
	if got := CallPrefix("acme", "c", time.Date(2027, 1, 2, 0, 0, 0, 0, time.UTC)); got != "acme/2027/01/02/c" {
		t.Errorf("the date is zero-padded: %q", got)
	}
}

func TestSegmentLong(t *testing.T) {
	long := strings.Repeat("/", 100) // 300 bytes encoded
	s := Segment(long)
	if len(s) > maxSegment || !strings.HasPrefix(s, "=h") {
		t.Fatalf("Segment of a long id = %q", s)
	}
	if s == Segment(long+"/") {
		t.Fatal("two long ids share a segment")
	}
	if err := objstore.ValidateKey(s); err != nil {
		t.Fatal(err)
	}
}

// FuzzSegment: every id encodes to a valid key segment, and different ids
// to different segments.
func FuzzSegment(f *testing.F) {
	for _, s := range []string{"acme", "", ".", "..", "a/b", "=3D", "a=3Db", "é", strings.Repeat("x", 300)} {
		f.Add(s, s+"x")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		sa, sb := Segment(a), Segment(b)
		if err := objstore.ValidateKey(sa); err != nil {
			t.Fatalf("Segment(%q) = %q: %v", a, sa, err)
		}
		if a != b && sa == sb {
			t.Fatalf("Segment(%q) and Segment(%q) are both %q", a, b, sa)
		}
	})
}

func TestMarshal(t *testing.T) {
	start := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	m := Manifest{
		Org: "acme", Queue: "support", Call: "c1", Node: "node-1",
		Start: start, End: start.Add(90 * time.Second),
		Participants: []Participant{{Role: "customer", Subject: "u-17"}, {Role: "agent", Subject: "ann"}},
		Files: []File{{Key: CallPrefix("acme", "c1", start) + "/" + MediaName("customer", "webm"), Kind: KindMedia,
			Role: "customer", Codecs: []string{"video/VP8", "audio/opus"}, StartOffset: 0.25, Duration: 89.5, Bytes: 1234, SHA256: "ab"}},
		Paused:   []Span{{Start: start.Add(10 * time.Second), End: start.Add(20 * time.Second)}},
		Complete: true,
	}
	b, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"version", "org", "queue", "call", "node", "start", "end", "participants", "files", "paused", "complete"} {
		if _, ok := back[k]; !ok {
			t.Errorf("manifest has no %q: %s", k, b)
		}
	}
	again, err := Parse(b)
	if err != nil || again.Version != Version || !again.End.Equal(m.End) ||
		again.Files[0].StartOffset != 0.25 || again.Paused[0].End.Sub(again.Paused[0].Start) != 10*time.Second {
		t.Fatalf("round trip: %+v, %v", again, err)
	}

	if _, err := Parse([]byte(`{"org": 5}`)); err == nil {
		t.Error("Parse took a manifest whose org is a number")
	}

	bad := []Manifest{
		{Call: "c1", Start: start, End: start, Complete: true},                // no org
		{Org: "acme", Start: start, End: start, Complete: true},               // no call
		{Org: "acme", Call: "c1", Start: start, End: start.Add(-time.Second)}, // ends before it starts
		{Org: "acme", Call: "c1", Start: start, End: start.Add(time.Second)},  // incomplete without a reason
	}
	for i, m := range bad {
		if _, err := Marshal(m); err == nil {
			t.Errorf("bad manifest %d accepted", i)
		}
	}
}

func TestTranscript(t *testing.T) {
	start := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	tr := NewTranscript(&buf, start)
	msgs := []Line{
		{At: 1.5, Role: "customer", Name: "Carl", Text: "hello"},
		{At: 2.25, Role: "agent", Name: "Ann", Text: "line\nbreak \"quoted\" ✓"},
		{At: 3, Role: "customer", Text: "no name"},
	}
	for _, m := range msgs {
		at := start.Add(time.Duration(m.At * float64(time.Second)))
		if err := tr.Add(at, m.Role, m.Name, m.Text); err != nil {
			t.Fatal(err)
		}
	}
	if tr.Lines() != len(msgs) {
		t.Fatalf("Lines() = %d, want %d", tr.Lines(), len(msgs))
	}
	sc := bufio.NewScanner(&buf)
	i := 0
	for ; sc.Scan(); i++ {
		var got Line
		if err := json.Unmarshal(sc.Bytes(), &got); err != nil {
			t.Fatalf("line %d %q: %v", i, sc.Text(), err)
		}
		if i >= len(msgs) || got != msgs[i] {
			t.Fatalf("line %d = %+v, want %+v", i, got, msgs[min(i, len(msgs)-1)])
		}
	}
	if i != len(msgs) {
		t.Fatalf("%d lines, want %d", i, len(msgs))
	}
}

func TestReadTranscript(t *testing.T) {
	start := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	tr := NewTranscript(&buf, start)
	for i, text := range []string{"one", "two\nlines"} {
		if err := tr.Add(start.Add(time.Duration(i)*time.Second), "agent", "Ann", text); err != nil {
			t.Fatal(err)
		}
	}
	lines, err := ReadTranscript(bytes.NewReader(buf.Bytes()))
	if err != nil || len(lines) != 2 || lines[1] != (Line{At: 1, Role: "agent", Name: "Ann", Text: "two\nlines"}) {
		t.Fatalf("ReadTranscript: %+v, %v", lines, err)
	}
	lines, err = ReadTranscript(bytes.NewReader(append(buf.Bytes(), "{\"at\": oops}\n"...)))
	if err == nil || len(lines) != 2 || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("a torn line: %+v, %v; want the two lines and an error naming line 3", lines, err)
	}
}
