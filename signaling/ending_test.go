package signaling_test

import (
	"context"
	"encoding/json"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/pion/webrtc/v4"
)

// rawPeer is a participant that records every message the server sends it,
// media negotiation included (client.Client handles those unseen), and
// answers the server's sub offers with a real pion connection, as a page
// does.
type rawPeer struct {
	t    *testing.T
	conn *websocket.Conn
	api  *webrtc.API
	msgs chan protocol.Message // every message, in order

	mu     sync.Mutex
	sub    *webrtc.PeerConnection
	tracks atomic.Int32 // tracks received on sub
}

func (e *env) dialRaw(ctx context.Context) *rawPeer {
	e.t.Helper()
	conn, _, err := websocket.Dial(ctx, e.wsURL, &websocket.DialOptions{HTTPHeader: map[string][]string{"Origin": {testOrigin}}})
	if err != nil {
		e.t.Fatal(err)
	}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		e.t.Fatal(err)
	}
	p := &rawPeer{t: e.t, conn: conn, api: webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)),
		msgs: make(chan protocol.Message, 1024)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.read(ctx)
	}()
	e.t.Cleanup(func() {
		conn.CloseNow()
		<-done
		p.mu.Lock()
		if p.sub != nil {
			p.sub.Close()
		}
		p.mu.Unlock()
	})
	return p
}

func (p *rawPeer) send(ctx context.Context, m protocol.Message) {
	p.t.Helper()
	m.V = protocol.Version
	b, err := json.Marshal(m)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := p.conn.Write(ctx, websocket.MessageText, b); err != nil {
		p.t.Errorf("send %s: %v", m.Type, err)
	}
}

// read records the server's messages and plays the page's part in the
// media negotiation: a sub connection made on assigned answers each offer.
func (p *rawPeer) read(ctx context.Context) {
	defer close(p.msgs)
	for {
		_, b, err := p.conn.Read(ctx)
		if err != nil {
			return
		}
		var m protocol.Message
		if err := json.Unmarshal(b, &m); err != nil {
			p.t.Errorf("undecodable message %q", b)
			return
		}
		switch {
		case m.Type == protocol.TypeAssigned:
			p.newSub(ctx)
		case m.Type == protocol.TypeEnded:
			p.mu.Lock()
			if p.sub != nil {
				p.sub.Close()
			}
			p.mu.Unlock()
		case m.Type == protocol.TypeOffer && m.PC == protocol.PCSub:
			p.answer(ctx, m)
		case m.Type == protocol.TypeCandidate && m.PC == protocol.PCSub && m.Candidate != nil:
			p.mu.Lock()
			sub := p.sub
			p.mu.Unlock()
			if sub != nil && sub.RemoteDescription() != nil {
				_ = sub.AddICECandidate(webrtc.ICECandidateInit{Candidate: m.Candidate.Candidate, SDPMid: m.Candidate.SDPMid,
					SDPMLineIndex: m.Candidate.SDPMLineIndex})
			}
		}
		p.msgs <- m
	}
}

func (p *rawPeer) newSub(ctx context.Context) {
	sub, err := p.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		p.t.Errorf("new sub: %v", err)
		return
	}
	sub.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		p.tracks.Add(1)
		buf := make([]byte, 1500)
		for {
			if _, _, err := t.Read(buf); err != nil {
				return
			}
		}
	})
	sub.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			return
		}
		init := c.ToJSON()
		p.send(ctx, protocol.Message{Type: protocol.TypeCandidate, PC: protocol.PCSub, Candidate: &protocol.ICECandidate{
			Candidate: init.Candidate, SDPMid: init.SDPMid, SDPMLineIndex: init.SDPMLineIndex}})
	})
	p.mu.Lock()
	p.sub = sub
	p.mu.Unlock()
}

func (p *rawPeer) answer(ctx context.Context, m protocol.Message) {
	p.mu.Lock()
	sub := p.sub
	p.mu.Unlock()
	if sub == nil {
		p.t.Errorf("sub offer before assigned")
		return
	}
	// An offer may find the connection closed (its call ended): then
	// there is nothing to answer, as for a page.
	if err := sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: m.SDP}); err != nil {
		p.t.Logf("apply sub offer: %v", err)
		return
	}
	ans, err := sub.CreateAnswer(nil)
	if err == nil {
		err = sub.SetLocalDescription(ans)
	}
	if err != nil {
		p.t.Logf("answer sub offer: %v", err)
		return
	}
	p.send(ctx, protocol.Message{Type: protocol.TypeAnswer, PC: protocol.PCSub, SDP: ans.SDP, Room: m.Room})
}

// until returns the messages received up to and including the first of
// type typ.
func (p *rawPeer) until(ctx context.Context, typ string) []protocol.Message {
	p.t.Helper()
	var got []protocol.Message
	for {
		select {
		case <-ctx.Done():
			p.t.Fatalf("no %s; got %v", typ, types(got))
		case m, ok := <-p.msgs:
			if !ok {
				p.t.Fatalf("connection ended before %s; got %v", typ, types(got))
			}
			got = append(got, m)
			if m.Type == typ {
				return got
			}
		}
	}
}

// during returns the messages received within d.
func (p *rawPeer) during(d time.Duration) []protocol.Message {
	var got []protocol.Message
	timeout := time.After(d)
	for {
		select {
		case <-timeout:
			return got
		case m, ok := <-p.msgs:
			if !ok {
				return got
			}
			got = append(got, m)
		}
	}
}

func types(ms []protocol.Message) []string {
	var ts []string
	for _, m := range ms {
		s := m.Type
		if m.PC != "" {
			s += "/" + m.PC
		}
		if m.Code != "" {
			s += "/" + m.Code
		}
		if m.Reason != "" {
			s += "/" + m.Reason
		}
		ts = append(ts, s)
	}
	return ts
}

// TestNoOfferToEndingCall: when the customer hangs up, the agent (a real
// pion peer that answers every sub offer, as a page does) is not offered a
// renegotiation of the tracks going away: it gets ended{peer_left} and no
// error, however it answers. Several calls, since the re-offer was a race.
func TestNoOfferToEndingCall(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	agent := e.dialRaw(ctx)
	agent.send(ctx, protocol.Message{Type: protocol.TypeJoin, Token: e.token("acme", protocol.RoleAgent, "Ann")})
	agent.until(ctx, protocol.TypeWelcome)
	agent.send(ctx, protocol.Message{Type: protocol.TypeAvailable})

	for i := range 3 {
		cust, _ := e.join(ctx, protocol.RoleCustomer, "Carl")
		next(t, ctx, cust, protocol.TypeAssigned)
		agent.until(ctx, protocol.TypeAssigned)
		agent.tracks.Store(0)
		if err := cust.PublishFiles(ctx, sample("sample.ivf"), sample("sample.ogg")); err != nil {
			t.Fatal(err)
		}
		// Both of the customer's tracks have reached the agent: no offer
		// of the call's set-up is still to come.
		waitFor(t, ctx, "the agent receives both tracks", func() bool { return agent.tracks.Load() == 2 })
		for len(agent.msgs) > 0 {
			<-agent.msgs // the set-up's messages
		}

		if err := cust.Send(ctx, protocol.Message{Type: protocol.TypeHangup}); err != nil {
			t.Fatal(err)
		}
		got := agent.until(ctx, protocol.TypeEnded)
		// What a late answer would have earned arrives after ended.
		got = append(got, agent.during(time.Second)...)
		for _, m := range got {
			switch {
			case m.Type == protocol.TypeOffer:
				t.Errorf("call %d: the agent was offered %s after the customer hung up: %v", i, m.PC, types(got))
			case m.Type == protocol.TypeError:
				t.Errorf("call %d: the agent got error %s (%s) around the hang-up: %v", i, m.Code, m.Message, types(got))
			case m.Type == protocol.TypeEnded && m.Reason != protocol.ReasonPeerLeft:
				t.Errorf("call %d: agent ended %q, want peer_left", i, m.Reason)
			}
		}
		cust.Close()
	}
	if n := counter(t, e.reg, "helpcaster_signaling_errors_total", map[string]string{"code": "invalid_state"}); n != 0 {
		t.Errorf("invalid_state errors counted: %v, want 0", n)
	}
}

// TestLateMessagesAfterEnded: what a page sends about a call that has just
// ended (a hang-up as the other side hangs up, an answer or a candidate
// for it) is acknowledged silently, and a customer's double hang-up counts
// no error; a chat that was not delivered, and a hang-up from an agent that
// never had a call, are still refused with invalid_state.
func TestLateMessagesAfterEnded(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	invalid := func() float64 {
		return counter(t, e.reg, "helpcaster_signaling_errors_total", map[string]string{"code": string(protocol.CodeInvalidState)})
	}

	agent := e.dialRaw(ctx)
	agent.send(ctx, protocol.Message{Type: protocol.TypeJoin, Token: e.token("acme", protocol.RoleAgent, "Ann")})
	agent.until(ctx, protocol.TypeWelcome)
	agent.send(ctx, protocol.Message{Type: protocol.TypeAvailable})

	// The customer hangs up twice (a double click); the agent, told
	// ended, sends what a page may have had in flight.
	cust, _ := e.join(ctx, protocol.RoleCustomer, "Carl")
	next(t, ctx, cust, protocol.TypeAssigned)
	assigned := agent.until(ctx, protocol.TypeAssigned)
	room := assigned[len(assigned)-1].Room
	if err := cust.Send(ctx, protocol.Message{Type: protocol.TypeHangup}); err != nil {
		t.Fatal(err)
	}
	// The second may find the connection closed already.
	_ = cust.Send(ctx, protocol.Message{Type: protocol.TypeHangup})
	agent.until(ctx, protocol.TypeEnded)
	agent.send(ctx, protocol.Message{Type: protocol.TypeHangup, Room: room, ID: "h1"})
	agent.send(ctx, protocol.Message{Type: protocol.TypeHangup, ID: "h2"})
	agent.send(ctx, protocol.Message{Type: protocol.TypeAnswer, PC: protocol.PCSub, SDP: "v=0\r\n", Room: room, ID: "a1"})
	agent.send(ctx, protocol.Message{Type: protocol.TypeCandidate, PC: protocol.PCSub, Room: room, ID: "c1",
		Candidate: &protocol.ICECandidate{Candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host"}})
	agent.send(ctx, protocol.Message{Type: protocol.TypeQuality, Quality: protocol.QualityLow, Room: room, ID: "q1"})
	// A chat is a message the agent wanted delivered: it is told it was not.
	agent.send(ctx, protocol.Message{Type: protocol.TypeChat, Text: "still there?", Room: room, ID: "chat"})
	got := agent.until(ctx, protocol.TypeError)
	if m := got[len(got)-1]; m.Ref != "chat" || m.Code != string(protocol.CodeInvalidState) {
		t.Errorf("first error after ended: %+v, want invalid_state for the chat alone; got %v", m, types(got))
	}
	waitFor(t, ctx, "the customer's connection closed", func() bool { return cust.CloseCode() != 0 })
	waitFor(t, ctx, "the customer's session gone", func() bool {
		return counter(t, e.reg, "helpcaster_signaling_connections", nil) == 1
	})
	if n := invalid(); n != 1 {
		t.Errorf("invalid_state counted %v times, want once (the chat)", n)
	}

	// Strict where nothing raced: an agent that never had a call.
	other := e.dialRaw(ctx)
	other.send(ctx, protocol.Message{Type: protocol.TypeJoin, Token: e.token("acme", protocol.RoleAgent, "Bob")})
	other.until(ctx, protocol.TypeWelcome)
	other.send(ctx, protocol.Message{Type: protocol.TypeHangup, ID: "never"})
	if m := other.until(ctx, protocol.TypeError); m[len(m)-1].Ref != "never" || m[len(m)-1].Code != string(protocol.CodeInvalidState) {
		t.Errorf("hang-up without a call: %+v, want invalid_state", m[len(m)-1])
	}
	// And a call that is not one of this agent's.
	other.send(ctx, protocol.Message{Type: protocol.TypeHangup, Room: room, ID: "theirs"})
	if m := other.until(ctx, protocol.TypeError); m[len(m)-1].Ref != "theirs" {
		t.Errorf("hang-up of another's call: %+v, want invalid_state", m[len(m)-1])
	}
}
