package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/helpcaster/helpcaster/internal/jsonkeys"
)

// Code is a stable, machine-readable error code carried in error messages.
type Code string

// Error codes. They never change meaning; clients may switch on them.
const (
	CodeBadToken           Code = "bad_token"           // token missing, malformed, forged or with wrong claims
	CodeTokenExpired       Code = "token_expired"       // token past exp or before nbf
	CodeUnknownOrg         Code = "unknown_org"         // token names an organization this server does not know
	CodeForbiddenOrigin    Code = "forbidden_origin"    // the page's Origin is not allowed for the organization
	CodeBadMessage         Code = "bad_message"         // not valid JSON, unknown type, missing or invalid field
	CodeMessageTooLarge    Code = "message_too_large"   // a message exceeded the size limit
	CodeRateLimited        Code = "rate_limited"        // too many messages; slow down
	CodeQueueFull          Code = "queue_full"          // the queue reached its maximum length
	CodeUnsupportedVersion Code = "unsupported_version" // v is not a version this server speaks
	CodeInvalidState       Code = "invalid_state"       // message not allowed now (e.g. offer before assigned)
	CodeBadSDP             Code = "bad_sdp"             // SDP could not be applied
	CodeUnavailable        Code = "unavailable"         // the queue cannot be reached right now; retry in a few seconds
	CodeInternal           Code = "internal_error"      // the server failed; retry later
	CodeBadResume          Code = "bad_resume"          // the resume token is malformed, unknown or its grace ran out; join again
	CodeInCall             Code = "in_call"             // join: the same user is in a call on another connection
	CodeForbidden          Code = "forbidden"           // the sender's role may not send this message
)

// Error is a protocol error: a code and a message safe to show a user.
type Error struct {
	Code    Code
	Message string
	// Cause, when set, is the detail behind Message for the server's log
	// (a parser's error, say). It is never sent to the client.
	Cause error
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// Errorf builds an *Error.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// AsError returns err as a protocol *Error, or internal_error when it is not one.
func AsError(err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	return &Error{Code: CodeInternal, Message: "internal error"}
}

// ErrorMessage builds the error message for err, referring to request id ref.
func ErrorMessage(err error, ref string) Message {
	pe := AsError(err)
	return Message{V: Version, Type: TypeError, Code: string(pe.Code), Message: pe.Message, Ref: ref}
}

// Decode parses and validates one message from a client. Every error it
// returns is an *Error with code bad_message or unsupported_version; the
// partly decoded message is returned too so its ID can be echoed.
func Decode(data []byte) (Message, error) {
	var m Message
	if !utf8.Valid(data) {
		return Message{ID: peekID(data)}, Errorf(CodeBadMessage, "message is not valid UTF-8")
	}
	if trimmed := bytes.TrimLeft(data, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return Message{}, Errorf(CodeBadMessage, "message must be a JSON object")
	}
	// encoding/json keeps the last of duplicate keys, so a check could read
	// one "type" and the handler act on another: refuse them. Syntax errors
	// are left to the decoder, which words them better.
	var dup *jsonkeys.DuplicateError
	if err := jsonkeys.Unique(data); errors.As(err, &dup) {
		id := ""
		if !strings.EqualFold(dup.Key, "id") {
			id = peekID(data)
		}
		return Message{ID: id}, Errorf(CodeBadMessage, "%s", dup.Error())
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Message{ID: peekID(data)}, Errorf(CodeBadMessage, "invalid JSON: %s", jsonProblem(err))
	}
	// The id is checked first: every later error returns m, whose id the
	// caller echoes.
	if len(m.ID) > MaxIDLen {
		m.ID = ""
		return m, Errorf(CodeBadMessage, "id longer than %d bytes", MaxIDLen)
	}
	if len(bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n")) != 0 {
		return m, Errorf(CodeBadMessage, "trailing data after the JSON object")
	}
	if err := exactKeys(data); err != nil {
		return m, err
	}
	if m.V != Version {
		return m, Errorf(CodeUnsupportedVersion, "protocol version %d is not supported; use %d", m.V, Version)
	}
	return m, validate(&m)
}

// Encode marshals a server message, setting V.
func Encode(m Message) ([]byte, error) {
	m.V = Version
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %s message: %w", m.Type, err)
	}
	return b, nil
}

func validate(m *Message) error {
	var allowed fieldSet
	switch m.Type {
	case TypeJoin, TypeResume:
		if m.Token == "" {
			return Errorf(CodeBadMessage, "%s needs a token", m.Type)
		}
		if len(m.Token) > MaxTokenLen {
			return Errorf(CodeBadMessage, "token longer than %d bytes", MaxTokenLen)
		}
		allowed = fToken
	case TypeAvailable, TypeAway:
		allowed = 0
	case TypeHangup:
		allowed = fRoom
	case TypeOffer, TypeAnswer:
		want := PCPub
		if m.Type == TypeAnswer {
			want = PCSub
		}
		if m.PC != want {
			return Errorf(CodeBadMessage, "%s must name pc %q", m.Type, want)
		}
		if m.SDP == "" {
			return Errorf(CodeBadMessage, "%s needs sdp", m.Type)
		}
		if len(m.SDP) > MaxSDPBytes {
			return Errorf(CodeBadMessage, "sdp longer than %d bytes", MaxSDPBytes)
		}
		allowed = fPC | fSDP | fRoom
	case TypeCandidate:
		if m.PC != PCPub && m.PC != PCSub {
			return Errorf(CodeBadMessage, "candidate must name pc %q or %q", PCPub, PCSub)
		}
		if c := m.Candidate; c != nil {
			if len(c.Candidate) > MaxCandLen {
				return Errorf(CodeBadMessage, "candidate longer than %d bytes", MaxCandLen)
			}
			if (c.SDPMid != nil && len(*c.SDPMid) > MaxMidLen) || (c.UsernameFragment != nil && len(*c.UsernameFragment) > MaxCandLen) {
				return Errorf(CodeBadMessage, "candidate field too long")
			}
		}
		allowed = fPC | fCandidate | fRoom
	case TypeChat:
		if m.Text == "" {
			return Errorf(CodeBadMessage, "chat needs text")
		}
		if !utf8.ValidString(m.Text) {
			return Errorf(CodeBadMessage, "chat text is not valid UTF-8")
		}
		if n := utf8.RuneCountInString(m.Text); n > MaxChatRunes {
			return Errorf(CodeBadMessage, "chat text has %d characters; the limit is %d", n, MaxChatRunes)
		}
		allowed = fText | fRoom
	case TypeQuality:
		sized := m.Width != 0 || m.Height != 0
		switch {
		case m.Quality != "" && sized:
			return Errorf(CodeBadMessage, "quality takes either quality or width and height, not both")
		case m.Quality != "":
			if m.Quality != QualityLow && m.Quality != QualityMedium && m.Quality != QualityHigh {
				return Errorf(CodeBadMessage, "quality must be %q, %q or %q", QualityLow, QualityMedium, QualityHigh)
			}
		case m.Width <= 0 || m.Height <= 0 || m.Width > MaxVideoSize || m.Height > MaxVideoSize:
			return Errorf(CodeBadMessage, "quality needs quality, or width and height from 1 to %d", MaxVideoSize)
		}
		allowed = fQuality | fRoom
	case TypeRecording:
		if m.State != RecordingPaused && m.State != RecordingResumed {
			return Errorf(CodeBadMessage, "recording needs state %q or %q", RecordingPaused, RecordingResumed)
		}
		allowed = fState | fRoom
	case TypeAccept, TypeDecline, TypeMonitor:
		if m.Room == "" || len(m.Room) > MaxIDLen {
			return Errorf(CodeBadMessage, "%s needs the room, at most %d bytes", m.Type, MaxIDLen)
		}
		allowed = fRoom
	case "":
		return Errorf(CodeBadMessage, "message has no type")
	default:
		return Errorf(CodeBadMessage, "unknown message type %q", truncate(m.Type, 32))
	}
	if len(m.Room) > MaxIDLen {
		return Errorf(CodeBadMessage, "room longer than %d bytes", MaxIDLen)
	}
	if extra := present(m) &^ allowed; extra != 0 {
		return Errorf(CodeBadMessage, "%s does not take field %q", m.Type, extra.first())
	}
	return nil
}

// fieldSet marks which optional client fields a message carries.
type fieldSet uint16

const (
	fToken fieldSet = 1 << iota
	fPC
	fSDP
	fCandidate
	fText
	fQuality
	fRoom
	fState
	fServerOnly
)

func (f fieldSet) first() string {
	for _, n := range []struct {
		f    fieldSet
		name string
	}{{fToken, "token"}, {fPC, "pc"}, {fSDP, "sdp"}, {fCandidate, "candidate"}, {fText, "text"}, {fQuality, "quality"}, {fRoom, "room"}, {fState, "state"}, {fServerOnly, "a server-only field"}} {
		if f&n.f != 0 {
			return n.name
		}
	}
	return ""
}

func present(m *Message) fieldSet {
	var f fieldSet
	if m.Token != "" {
		f |= fToken
	}
	if m.PC != "" {
		f |= fPC
	}
	if m.SDP != "" {
		f |= fSDP
	}
	if m.Candidate != nil {
		f |= fCandidate
	}
	if m.Text != "" {
		f |= fText
	}
	if m.Quality != "" || m.Width != 0 || m.Height != 0 {
		f |= fQuality
	}
	if m.Room != "" {
		f |= fRoom
	}
	if m.State != "" {
		f |= fState
	}
	if m.From != nil || m.TS != 0 || m.Session != "" || m.Role != "" || m.Org != "" || m.Queue != "" ||
		m.Limits != nil || m.Resume != "" || m.Position != 0 || m.Length != 0 || m.Wait != 0 || m.Timeout != 0 || m.Stats != nil ||
		m.Peer != nil ||
		m.ICEServers != nil || m.Reason != "" || m.Code != "" || m.Message != "" || m.Ref != "" ||
		m.Track != "" || m.Active != nil || m.Paused != nil {
		f |= fServerOnly
	}
	return f
}

// Field names of the objects a client sends, exactly as the protocol spells
// them. Read-only.
var (
	messageKeys   = jsonNames(reflect.TypeFor[Message]())
	candidateKeys = jsonNames(reflect.TypeFor[ICECandidate]())
)

func jsonNames(t reflect.Type) map[string]bool {
	names := make(map[string]bool, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		names[name] = true
	}
	return names
}

// exactKeys refuses a key that encoding/json matched to a field only by
// ignoring case ("Type", "TYPE"): beside "type" it would be a duplicate that
// jsonkeys.Unique does not see. data has decoded into a Message.
func exactKeys(data []byte) error {
	var top map[string]json.RawMessage
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&top); err != nil {
		return Errorf(CodeBadMessage, "invalid JSON: %s", jsonProblem(err))
	}
	check := func(obj map[string]json.RawMessage, known map[string]bool, where string) error {
		for k := range obj {
			if !known[k] {
				return Errorf(CodeBadMessage, "unknown key %q%s (keys are case-sensitive)", truncate(k, 32), where)
			}
		}
		return nil
	}
	if err := check(top, messageKeys, ""); err != nil {
		return err
	}
	if raw := bytes.TrimSpace(top["candidate"]); len(raw) > 0 && raw[0] == '{' {
		var cand map[string]json.RawMessage
		if err := json.Unmarshal(raw, &cand); err != nil {
			return Errorf(CodeBadMessage, "invalid JSON: %s", jsonProblem(err))
		}
		return check(cand, candidateKeys, " in candidate")
	}
	return nil
}

// peekID recovers the id of a message that failed to decode, if it is a
// short string, so the error can refer to it.
func peekID(data []byte) string {
	var probe struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(data, &probe) != nil || len(probe.ID) > MaxIDLen {
		return ""
	}
	return probe.ID
}

func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q has the wrong type", te.Field)
	default:
		return truncate(err.Error(), 100)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
