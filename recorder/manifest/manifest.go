// Package manifest holds what a recorded call leaves in storage besides its
// media files: the manifest that ties the files together on one clock, the
// chat transcript, and the object keys they are stored under. It has no
// state of its own.
package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Version is the manifest format's version, written in every manifest.
const Version = 1

// Manifest describes one recorded call. Times are UTC wall-clock times on
// the call's clock; offsets are seconds from Start.
type Manifest struct {
	Version      int           `json:"version"`
	Org          string        `json:"org"`
	Queue        string        `json:"queue"`
	Call         string        `json:"call"`
	Node         string        `json:"node,omitempty"` // the node that recorded it
	Start        time.Time     `json:"start"`
	End          time.Time     `json:"end"`
	Participants []Participant `json:"participants"`
	Files        []File        `json:"files"`
	Paused       []Span        `json:"paused,omitempty"`
	// Complete is false when some of the call is missing from the files:
	// the node stopped mid-call, storage could not keep up, or a file could
	// not be written. Incomplete says why.
	Complete   bool   `json:"complete"`
	Incomplete string `json:"incomplete,omitempty"`
}

// Participant is one side of the call, as the organization named it.
type Participant struct {
	Role    string `json:"role"`
	Subject string `json:"subject,omitempty"` // the token's subject, the organization's own id for the user
}

// File kinds.
const (
	KindMedia      = "media"
	KindTranscript = "transcript"
)

// File is one object of the recording.
type File struct {
	Key    string   `json:"key"`
	Kind   string   `json:"kind"`
	Role   string   `json:"role,omitempty"`   // whose media
	Codecs []string `json:"codecs,omitempty"` // e.g. "video/VP8", "audio/opus"
	// StartOffset is when the file's time 0 is, in seconds after the
	// manifest's Start; Duration is how long it runs, in seconds.
	StartOffset float64 `json:"startOffset"`
	Duration    float64 `json:"duration"`
	Bytes       int64   `json:"bytes"`
	SHA256      string  `json:"sha256"` // hex
}

// Span is a stretch of the call that was not recorded (paused).
type Span struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Offset is t in seconds after start, to the millisecond.
func Offset(start, t time.Time) float64 {
	return float64(t.Sub(start).Round(time.Millisecond)) / float64(time.Second)
}

// Marshal encodes m as indented JSON, refusing a manifest that says less
// than a reader needs.
func Marshal(m Manifest) ([]byte, error) {
	switch {
	case m.Org == "" || m.Call == "":
		return nil, fmt.Errorf("manifest: org and call are required")
	case m.End.Before(m.Start):
		return nil, fmt.Errorf("manifest: call %s ends before it starts", m.Call)
	case !m.Complete && m.Incomplete == "":
		return nil, fmt.Errorf("manifest: call %s is incomplete without a reason", m.Call)
	}
	m.Version = Version
	m.Start, m.End = m.Start.UTC(), m.End.UTC()
	for i := range m.Paused {
		m.Paused[i].Start, m.Paused[i].End = m.Paused[i].Start.UTC(), m.Paused[i].End.UTC()
	}
	return json.MarshalIndent(m, "", "  ")
}

// Line is one chat message of the transcript.
type Line struct {
	At   float64 `json:"at"` // seconds after the call's start
	Role string  `json:"role"`
	Name string  `json:"name,omitempty"` // the display name the sender's token gave
	Text string  `json:"text"`
}

// Transcript writes chat lines as JSON Lines, one message per line, in the
// order given. It is not safe for concurrent use: one call's chat goes
// through one goroutine.
type Transcript struct {
	w     io.Writer
	start time.Time
	n     int
}

// NewTranscript writes the transcript of a call that started at start to w.
func NewTranscript(w io.Writer, start time.Time) *Transcript {
	return &Transcript{w: w, start: start}
}

// Add writes one message sent at t.
func (t *Transcript) Add(at time.Time, role, name, text string) error {
	b, err := json.Marshal(Line{At: Offset(t.start, at), Role: role, Name: name, Text: text})
	if err != nil {
		return fmt.Errorf("transcript: %w", err)
	}
	if _, err := t.w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("transcript: %w", err)
	}
	t.n++
	return nil
}

// Lines is how many messages were written.
func (t *Transcript) Lines() int { return t.n }

// Parse decodes a manifest as Marshal wrote it.
func Parse(data []byte) (Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("manifest: %w", err)
	}
	return m, nil
}

// ReadTranscript reads a transcript's lines.
func ReadTranscript(r io.Reader) ([]Line, error) {
	var out []Line
	dec := json.NewDecoder(r)
	for {
		var l Line
		err := dec.Decode(&l)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("transcript line %d: %w", len(out)+1, err)
		}
		out = append(out, l)
	}
}
