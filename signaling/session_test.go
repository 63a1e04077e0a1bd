package signaling_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/helpcaster/helpcaster/client"
	"github.com/helpcaster/helpcaster/signaling"
	"github.com/helpcaster/helpcaster/signaling/protocol"
)

// rawDial opens a bare WebSocket to the server, for tests that must see
// every frame (close codes and reasons included) and send what no client
// library would.
func (e *env) rawDial(ctx context.Context) *websocket.Conn {
	e.t.Helper()
	conn, _, err := websocket.Dial(ctx, e.wsURL, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {testOrigin}}})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.CloseNow() })
	return conn
}

// refusal is what a refused connection saw: the error messages it got, and
// how the connection ended.
type refusal struct {
	errors []protocol.Message
	other  []string // types of any other messages
	code   websocket.StatusCode
	reason string
}

// readRefusal reads until the connection ends.
func readRefusal(ctx context.Context, conn *websocket.Conn) refusal {
	var r refusal
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				r.code, r.reason = ce.Code, ce.Reason
			} else {
				r.code = -1 // no close frame (the client sees 1006)
			}
			return r
		}
		var m protocol.Message
		if json.Unmarshal(data, &m) == nil && m.Type == protocol.TypeError {
			r.errors = append(r.errors, m)
		} else {
			r.other = append(r.other, m.Type)
		}
	}
}

// TestRefusedBeforeJoin: a connection whose first message is not a valid
// join always learns why it is refused: exactly one error message with the
// right code, then a close frame 1008 whose reason is that code. Each case
// is tried many times because losing the answer was a race.
func TestRefusedBeforeJoin(t *testing.T) {
	const tries = 25
	e := newEnv(t, withLimits(signaling.Limits{MaxMessageBytes: 16 << 10}))
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	text := func(s string) func(context.Context, *websocket.Conn) error {
		return func(ctx context.Context, c *websocket.Conn) error {
			return c.Write(ctx, websocket.MessageText, []byte(s))
		}
	}
	cases := []struct {
		name string
		send func(context.Context, *websocket.Conn) error
		code protocol.Code
	}{
		{"invalid JSON", text(`{"v":1,"type":"join"`), protocol.CodeBadMessage},
		{"empty token", text(`{"v":1,"type":"join","token":""}`), protocol.CodeBadMessage},
		{"missing token", text(`{"v":1,"type":"join"}`), protocol.CodeBadMessage},
		{"no v", text(`{"type":"join","token":"x"}`), protocol.CodeUnsupportedVersion},
		{"unknown type", text(`{"v":1,"type":"teleport"}`), protocol.CodeBadMessage},
		{"token over 8 KiB", text(`{"v":1,"type":"join","token":"` + strings.Repeat("t", protocol.MaxTokenLen+1) + `"}`), protocol.CodeBadMessage},
		{"duplicate key", text(`{"v":1,"type":"join","token":"x","token":"y"}`), protocol.CodeBadMessage},
		{"too large", text(`{"v":1,"type":"join","token":"` + strings.Repeat("t", 17<<10) + `"}`), protocol.CodeMessageTooLarge},
		{"binary frame", func(ctx context.Context, c *websocket.Conn) error {
			return c.Write(ctx, websocket.MessageBinary, []byte(`{"v":1,"type":"join","token":"x"}`))
		}, protocol.CodeBadMessage},
		{"not join first", text(`{"v":1,"type":"chat","text":"hi"}`), protocol.CodeInvalidState},
		{"bad token", text(`{"v":1,"type":"join","token":"not.a.jwt"}`), protocol.CodeBadToken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			good := 0
			var bad []string
			for range tries {
				conn := e.rawDial(ctx)
				if err := tc.send(ctx, conn); err != nil {
					t.Fatal(err)
				}
				r := readRefusal(ctx, conn)
				conn.CloseNow()
				if len(r.errors) == 1 && r.errors[0].Code == string(tc.code) && r.errors[0].Message != "" && len(r.other) == 0 &&
					r.code == websocket.StatusPolicyViolation && r.reason == string(tc.code) {
					good++
					continue
				}
				if len(bad) < 3 {
					bad = append(bad, describe(r))
				}
			}
			if good != tries {
				t.Errorf("%d of %d tries got the error %s then close 1008; others saw %v", good, tries, tc.code, bad)
			}
		})
	}
}

func describe(r refusal) string {
	var b strings.Builder
	for _, m := range r.errors {
		b.WriteString("error " + m.Code + " (" + m.Message + "); ")
	}
	for _, typ := range r.other {
		b.WriteString(typ + "; ")
	}
	if r.code == -1 {
		b.WriteString("no close frame")
	} else {
		b.WriteString("close " + r.code.String() + " " + r.reason)
	}
	return b.String()
}

// TestRefusedAfterJoin: after join, a binary frame is refused with
// bad_message and the connection goes on; too many refusals close it with
// 1008 and the reason, after the last error is delivered.
func TestRefusedAfterJoin(t *testing.T) {
	const tries = 20
	e := newEnv(t, withLimits(signaling.Limits{MaxRejected: 3}))
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	for range tries {
		conn := e.rawDial(ctx)
		join := `{"v":1,"type":"join","token":"` + e.token("acme", protocol.RoleAgent, "Ann") + `"}`
		if err := conn.Write(ctx, websocket.MessageText, []byte(join)); err != nil {
			t.Fatal(err)
		}
		for range 4 {
			if err := conn.Write(ctx, websocket.MessageBinary, []byte(`{"v":1,"type":"available"}`)); err != nil {
				t.Fatal(err)
			}
		}
		r := readRefusal(ctx, conn)
		conn.CloseNow()
		if len(r.errors) != 4 || r.code != websocket.StatusPolicyViolation || r.reason != "too many rejected messages" {
			t.Fatalf("4 binary frames after join with MaxRejected 3: %s", describe(r))
		}
		for _, m := range r.errors {
			if m.Code != string(protocol.CodeBadMessage) || !strings.Contains(m.Message, "binary") {
				t.Fatalf("binary frame answered %+v", m)
			}
		}
	}
}

// TestJoinTimeoutCloses: a connection that never joins is closed with 1008
// and a reason, every time.
func TestJoinTimeoutCloses(t *testing.T) {
	e := newEnv(t, withLimits(signaling.Limits{JoinTimeout: 100 * time.Millisecond}))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for range 20 {
		conn := e.rawDial(ctx)
		r := readRefusal(ctx, conn)
		conn.CloseNow()
		if r.code != websocket.StatusPolicyViolation || r.reason != "no join within the time allowed" {
			t.Fatalf("silent connection: %s", describe(r))
		}
	}
}

// TestDuplicateKeyInCall: a message naming a key twice is refused with
// bad_message that names the key, and does nothing: the customer's
// {"type":"chat",...,"type":"hangup"} used to hang up the call.
func TestDuplicateKeyInCall(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cust, agent, _ := startCall(t, ctx, e)

	for i, raw := range []string{
		`{"v":1,"id":"d1","type":"chat","type":"hangup"}`,
		`{"v":1,"id":"d2","type":"chat","Type":"hangup"}`,
	} {
		if err := cust.SendRaw(ctx, []byte(raw)); err != nil {
			t.Fatal(err)
		}
		m := next(t, ctx, cust, protocol.TypeError, protocol.TypeEnded)
		if m.Type != protocol.TypeError || m.Code != string(protocol.CodeBadMessage) || m.Ref != fmt.Sprint("d", i+1) ||
			!strings.Contains(m.Message, "ype\"") {
			t.Fatalf("sent %s: got %+v, want bad_message naming the key", raw, m)
		}
	}
	// The call is still up: chat goes through both ways, nobody was told
	// it ended.
	chat(t, ctx, cust, agent, "still there?")
	chat(t, ctx, agent, cust, "yes")
	if got := counter(t, e.reg, "helpcaster_calls_ended_total", nil); got != 0 {
		t.Fatalf("calls ended = %v, want the call up", got)
	}
}

// TestCandidateBurst: a burst of candidates for both connections during
// set-up, as Firefox trickles them, is not refused by the flood guard and
// the call comes up; a flood of chat still is.
func TestCandidateBurst(t *testing.T) {
	e := newEnv(t) // the default limits: 20 messages a second, burst 40
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cust, agent, _ := startCall(t, ctx, e)

	mid, idx := "0", uint16(0)
	for i := range 60 {
		pc := protocol.PCPub
		if i%2 == 1 {
			pc = protocol.PCSub
		}
		cand := fmt.Sprintf("candidate:%d 1 udp 2130706431 127.0.0.1 %d typ host", i, 20000+i)
		if err := cust.Send(ctx, protocol.Message{ID: fmt.Sprint("c", i), Type: protocol.TypeCandidate, PC: pc,
			Candidate: &protocol.ICECandidate{Candidate: cand, SDPMid: &mid, SDPMLineIndex: &idx}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, pc := range []string{protocol.PCPub, protocol.PCSub} {
		if err := cust.Send(ctx, protocol.Message{Type: protocol.TypeCandidate, PC: pc}); err != nil { // end of candidates
			t.Fatal(err)
		}
	}
	for _, c := range []*client.Client{cust, agent} {
		if err := c.PublishFiles(ctx, sample("sample.ivf"), sample("sample.ogg")); err != nil {
			t.Fatal(err)
		}
	}
	waitMedia(t, ctx, "customer", cust)
	waitMedia(t, ctx, "agent", agent)
	if got := counter(t, e.reg, "helpcaster_signaling_errors_total", nil); got != 0 {
		t.Fatalf("%v error messages during set-up, want none", got)
	}
	if got := counter(t, e.reg, "helpcaster_signaling_refused_total", nil); got != 0 {
		t.Fatalf("%v messages refused during set-up, want none", got)
	}

	for range 100 {
		if err := cust.Send(ctx, protocol.Message{Type: protocol.TypeChat, Text: "spam"}); err != nil {
			t.Fatal(err)
		}
	}
	m := next(t, ctx, cust, protocol.TypeError)
	if m.Code != string(protocol.CodeRateLimited) {
		t.Fatalf("chat flood: %+v, want rate_limited", m)
	}
	if got := counter(t, e.reg, "helpcaster_signaling_refused_total", map[string]string{"reason": "rate"}); got == 0 {
		t.Fatal("chat flood refusals not counted")
	}
}

// TestCandidateCap: a client gives one connection at most MaxCandidates
// candidates per negotiation; past it each is refused with invalid_state.
func TestCandidateCap(t *testing.T) {
	e := newEnv(t, withLimits(signaling.Limits{MaxCandidates: 5}))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cust, _, _ := startCall(t, ctx, e)
	mid, idx := "0", uint16(0)
	for i := range 7 {
		cand := fmt.Sprintf("candidate:%d 1 udp 2130706431 127.0.0.1 %d typ host", i, 20000+i)
		if err := cust.Send(ctx, protocol.Message{ID: fmt.Sprint("c", i), Type: protocol.TypeCandidate, PC: protocol.PCSub,
			Candidate: &protocol.ICECandidate{Candidate: cand, SDPMid: &mid, SDPMLineIndex: &idx}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, ref := range []string{"c5", "c6"} {
		m := next(t, ctx, cust, protocol.TypeError)
		if m.Code != string(protocol.CodeInvalidState) || m.Ref != ref || !strings.Contains(m.Message, "5 candidates") {
			t.Fatalf("candidate past the cap: %+v, want invalid_state for %s", m, ref)
		}
	}
	if got := counter(t, e.reg, "helpcaster_signaling_refused_total", map[string]string{"reason": "candidates"}); got != 2 {
		t.Fatalf("candidate refusals counted %v, want 2", got)
	}
}

// goErrorText are fragments of Go and pion error text that must not reach a
// client.
var goErrorText = []string{"sfu:", "apply offer", "create answer", "SetRemoteDescription", "unmarshal", "invalid", "pion", ": ", "%!"}

// TestBadSDPMessages: bad_sdp and the SFU's invalid_state carry a short
// fixed sentence, never the Go error chain.
func TestBadSDPMessages(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cust, _, _ := startCall(t, ctx, e)

	// The SFU counts the media sections before it parses anything.
	nine := "v=0\r\n" + strings.Repeat("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n", 9)
	cases := []struct {
		m    protocol.Message
		code protocol.Code
		msg  string
	}{
		{protocol.Message{Type: protocol.TypeOffer, PC: protocol.PCPub, SDP: "v=0 garbage \x01 nonsense"}, protocol.CodeBadSDP, "the offer could not be parsed"},
		{protocol.Message{Type: protocol.TypeOffer, PC: protocol.PCPub, SDP: nine}, protocol.CodeBadSDP, "too many media sections (max 8)"},
		{protocol.Message{Type: protocol.TypeAnswer, PC: protocol.PCSub, SDP: "v=0"}, protocol.CodeInvalidState, "no offer is waiting for an answer"},
	}
	for i, tc := range cases {
		tc.m.ID = fmt.Sprint("s", i)
		if err := cust.Send(ctx, tc.m); err != nil {
			t.Fatal(err)
		}
		m := next(t, ctx, cust, protocol.TypeError)
		if m.Code != string(tc.code) || m.Ref != tc.m.ID || m.Message != tc.msg {
			t.Errorf("%s: got %s %q, want %s %q", tc.m.ID, m.Code, m.Message, tc.code, tc.msg)
		}
		for _, frag := range goErrorText {
			if strings.Contains(m.Message, frag) {
				t.Errorf("%s: message %q carries %q", tc.m.ID, m.Message, frag)
			}
		}
	}
}

// TestGarbageCandidate: what a candidate line that does not parse gets,
// before the call and during it: bad_sdp "the candidate could not be
// parsed", and the connection (and call) go on. A well-formed candidate
// before the call gets invalid_state.
func TestGarbageCandidate(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	garbage := func(id string) protocol.Message {
		return protocol.Message{ID: id, Type: protocol.TypeCandidate, PC: protocol.PCPub,
			Candidate: &protocol.ICECandidate{Candidate: "candidate:garbage 1 nonsense"}}
	}
	expect := func(c *client.Client, m protocol.Message, code protocol.Code, msg string) {
		t.Helper()
		if err := c.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
		got := next(t, ctx, c, protocol.TypeError)
		if got.Code != string(code) || got.Ref != m.ID || got.Message != msg {
			t.Fatalf("%s: got %s %q, want %s %q", m.ID, got.Code, got.Message, code, msg)
		}
	}

	waiting, _ := e.join(ctx, protocol.RoleCustomer, "Wendy")
	expectQueued(t, ctx, waiting, 1, 1)
	expect(waiting, garbage("g1"), protocol.CodeBadSDP, "the candidate could not be parsed")
	good := protocol.Message{ID: "g2", Type: protocol.TypeCandidate, PC: protocol.PCPub,
		Candidate: &protocol.ICECandidate{Candidate: "candidate:1 1 udp 2130706431 127.0.0.1 20000 typ host"}}
	expect(waiting, good, protocol.CodeInvalidState, "not in a call")

	agent, _ := e.join(ctx, protocol.RoleAgent, "Ann")
	if err := agent.Send(ctx, protocol.Message{Type: protocol.TypeAvailable}); err != nil {
		t.Fatal(err)
	}
	next(t, ctx, waiting, protocol.TypeAssigned)
	next(t, ctx, agent, protocol.TypeAssigned)
	expect(waiting, garbage("g3"), protocol.CodeBadSDP, "the candidate could not be parsed") // before any offer
	for _, c := range []*client.Client{waiting, agent} {
		if err := c.PublishFiles(ctx, sample("sample.ivf"), sample("sample.ogg")); err != nil {
			t.Fatal(err)
		}
	}
	waitMedia(t, ctx, "customer", waiting)
	expect(waiting, garbage("g4"), protocol.CodeBadSDP, "the candidate could not be parsed") // during the call
	chat(t, ctx, waiting, agent, "still up")
}
