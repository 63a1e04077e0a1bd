// Package client is a Go HelpCaster participant: it speaks the signaling
// protocol over a WebSocket and sends and receives media with pion/webrtc.
// Tests, bot agents and the load harness use it.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/helpcaster/helpcaster/rtpcodec"
	"github.com/helpcaster/helpcaster/signaling/protocol"
	"github.com/pion/interceptor"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Options configure a Client.
type Options struct {
	// URL is the signaling endpoint, e.g. ws://127.0.0.1:8080/v1/signal.
	URL string
	// Origin, when set, is sent as the Origin header (as a browser would).
	Origin string
	// LoopbackOnly restricts ICE to loopback addresses (tests on one machine).
	LoopbackOnly bool
	// ICENetworkTypes, when set, are the only networks ICE gathers and
	// connects over, e.g. {webrtc.NetworkTypeTCP4} to reach the SFU by ICE
	// over TCP alone. Empty keeps the default: UDP4 with LoopbackOnly, else
	// pion's defaults.
	ICENetworkTypes []webrtc.NetworkType
	// AudioLevel, when set, makes the client negotiate the RFC 6464 audio
	// level header extension and mark every audio packet it sends with this
	// level (see AudioLevel). Nil sends no levels, as pion does by default.
	AudioLevel *AudioLevel
	// RelayOnly makes ICE use only relayed (TURN) candidates, with the ICE
	// servers of the assigned message, as a browser with
	// iceTransportPolicy "relay".
	RelayOnly bool
	// CaptureTime makes the client negotiate the absolute capture time
	// header extension and stamp every packet it sends with its send time
	// (see CaptureTime).
	CaptureTime bool
	// OnTrack, when set, is given every track received on the sub
	// connection to read until it ends (on its own goroutine); the client
	// then does not count the track's packets itself (Stats counts only
	// tracks).
	OnTrack func(*webrtc.TrackRemote, *webrtc.RTPReceiver)
	// NoMedia makes the client set up no peer connections when a call
	// starts (signaling only, as the load harness's queue storm).
	NoMedia bool
}

// Stats counts what a client received on its sub connection.
type Stats struct {
	AudioPackets   int64
	VideoPackets   int64
	VideoKeyframes int64
	Tracks         int64  // tracks received
	TracksEnded    int64  // received tracks that have ended
	VideoCodec     string // MIME type of the last video track received
}

// Client is one participant.
type Client struct {
	conn *websocket.Conn
	api  *webrtc.API
	msgs chan protocol.Message

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	tags      *streamTags                                    // simulcast encodings' MID and RID
	relayOnly bool                                           // Options.RelayOnly
	onTrack   func(*webrtc.TrackRemote, *webrtc.RTPReceiver) // Options.OnTrack
	noMedia   bool                                           // Options.NoMedia

	mu       sync.Mutex
	closing  bool // Close has begun: Go starts nothing more
	pub, sub *webrtc.PeerConnection
	pending  map[string][]webrtc.ICECandidateInit
	mediaErr error
	readErr  error // why the read loop ended; guarded by c.mu

	audio, video, keyframes, tracks, ended atomic.Int64
	videoCodec                             atomic.Value // string
}

// Dial connects to the signaling endpoint. The connection lives until Close
// or until ctx ends.
func Dial(ctx context.Context, opts Options) (*Client, error) {
	h := http.Header{}
	if opts.Origin != "" {
		h.Set("Origin", opts.Origin)
	}
	conn, _, err := websocket.Dial(ctx, opts.URL, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		return nil, fmt.Errorf("dial signaling: %w", err)
	}
	conn.SetReadLimit(1 << 20)
	tags := &streamTags{}
	api, err := newAPI(opts, tags)
	if err != nil {
		conn.CloseNow()
		return nil, err
	}
	cctx, cancel := context.WithCancel(ctx)
	c := &Client{conn: conn, api: api, msgs: make(chan protocol.Message, 1024), ctx: cctx, cancel: cancel,
		pending: make(map[string][]webrtc.ICECandidateInit), tags: tags, relayOnly: opts.RelayOnly, onTrack: opts.OnTrack, noMedia: opts.NoMedia}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.readLoop()
	}()
	return c, nil
}

func newAPI(opts Options, tags *streamTags) (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, fmt.Errorf("register codecs: %w", err)
	}
	// MID and RID header extensions, so that a Publish with simulcast
	// encodings can name its layers (as browsers do).
	if err := webrtc.ConfigureSimulcastExtensionHeaders(me); err != nil {
		return nil, fmt.Errorf("register simulcast header extensions: %w", err)
	}
	ir := &interceptor.Registry{}
	ir.Add(simulcastTagFactory{tags: tags}) // first, so it runs last: the extensions go on the wire as set
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		return nil, fmt.Errorf("register interceptors: %w", err)
	}
	if opts.AudioLevel != nil {
		if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
			return nil, fmt.Errorf("register audio level header extension: %w", err)
		}
		// Added last, so it runs first: the NACK responder keeps the
		// stamped packet.
		ir.Add(audioLevelFactory{level: opts.AudioLevel})
	}
	if opts.CaptureTime {
		for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
			if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: rtpcodec.AbsCaptureTimeURI}, kind); err != nil {
				return nil, fmt.Errorf("register capture time header extension: %w", err)
			}
		}
		ir.Add(captureTimeFactory{}) // last, so it runs first (as the audio level's)
	}
	var se webrtc.SettingEngine
	if opts.LoopbackOnly {
		se.SetIncludeLoopbackCandidate(true)
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	}
	if opts.RelayOnly {
		// pion waits 2 s before it nominates a relayed pair, in case a
		// better one turns up; with relay only none will, and a browser
		// does not wait.
		se.SetRelayAcceptanceMinWait(0)
	}
	if len(opts.ICENetworkTypes) > 0 {
		se.SetNetworkTypes(append([]webrtc.NetworkType(nil), opts.ICENetworkTypes...))
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// Send writes one message (V is set for the caller).
func (c *Client) Send(ctx context.Context, m protocol.Message) error {
	m.V = protocol.Version
	b, err := protocol.Encode(m)
	if err != nil {
		return err
	}
	return c.SendRaw(ctx, b)
}

// SendRaw writes bytes as one text message, valid or not (for tests of the
// server's input handling).
func (c *Client) SendRaw(ctx context.Context, b []byte) error {
	if err := c.conn.Write(ctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

// ErrClosed is returned by Next once the connection has ended.
var ErrClosed = errors.New("client: connection closed")

// Next returns the next message whose type is one of types (any type when
// none are given), skipping others. Media negotiation messages are handled
// inside the client and never returned.
func (c *Client) Next(ctx context.Context, types ...string) (protocol.Message, error) {
	for {
		select {
		case <-ctx.Done():
			return protocol.Message{}, ctx.Err()
		case m, ok := <-c.msgs:
			if !ok {
				return protocol.Message{}, ErrClosed
			}
			if len(types) == 0 {
				return m, nil
			}
			for _, t := range types {
				if m.Type == t {
					return m, nil
				}
			}
		}
	}
}

// Join sends join with token and returns the welcome, or the error the
// server answered with.
func (c *Client) Join(ctx context.Context, token string) (protocol.Message, error) {
	return c.first(ctx, protocol.TypeJoin, token)
}

// Resume sends resume with a resume token (from an earlier welcome) and
// returns the welcome, or the error the server answered with.
func (c *Client) Resume(ctx context.Context, token string) (protocol.Message, error) {
	return c.first(ctx, protocol.TypeResume, token)
}

func (c *Client) first(ctx context.Context, typ, token string) (protocol.Message, error) {
	if err := c.Send(ctx, protocol.Message{Type: typ, Token: token}); err != nil {
		return protocol.Message{}, err
	}
	m, err := c.Next(ctx, protocol.TypeWelcome, protocol.TypeError)
	if err != nil {
		return m, err
	}
	if m.Type == protocol.TypeError {
		return m, &protocol.Error{Code: protocol.Code(m.Code), Message: m.Message}
	}
	return m, nil
}

// Stats returns what the client has received so far.
func (c *Client) Stats() Stats {
	codec, _ := c.videoCodec.Load().(string)
	return Stats{AudioPackets: c.audio.Load(), VideoPackets: c.video.Load(), VideoKeyframes: c.keyframes.Load(),
		Tracks: c.tracks.Load(), TracksEnded: c.ended.Load(), VideoCodec: codec}
}

// WaitMedia waits until the client has received at least n audio and n
// video packets, a keyframe among them, or ctx ends: the error then says
// what it had received.
func (c *Client) WaitMedia(ctx context.Context, n int64) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		s := c.Stats()
		if s.AudioPackets >= n && s.VideoPackets >= n && s.VideoKeyframes >= 1 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("received %+v (media error: %v): %w", s, c.MediaError(), ctx.Err())
		case <-tick.C:
		}
	}
}

// MediaError returns the first media negotiation error, if any.
func (c *Client) MediaError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mediaErr
}

// CloseCode returns the WebSocket close status the connection ended with:
// the code of the server's close frame, 1006 (abnormal closure) when it
// ended without one (the server died, the network went away), or 0 while
// the connection is still being read.
func (c *Client) CloseCode() int {
	c.mu.Lock()
	err := c.readErr
	c.mu.Unlock()
	if err == nil {
		return 0
	}
	if code := websocket.CloseStatus(err); code != -1 {
		return int(code)
	}
	return int(websocket.StatusAbnormalClosure)
}

// Close ends the connection and the media, and waits for the client's
// goroutines.
func (c *Client) Close() {
	c.shut(true)
}

// Drop ends the connection abruptly, with no close frame, as a lost
// network or a crashed browser would, and then everything Close ends.
func (c *Client) Drop() {
	c.shut(false)
}

func (c *Client) shut(graceful bool) {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.cancel()
	if graceful {
		c.conn.Close(websocket.StatusNormalClosure, "bye")
	} else {
		c.conn.CloseNow()
	}
	c.closePCs()
	c.wg.Wait()
	// The read loop may have created a call's connections after the first
	// closePCs, while it was handling an assigned.
	c.closePCs()
}

func (c *Client) readLoop() {
	defer close(c.msgs)
	for {
		_, data, err := c.conn.Read(c.ctx)
		if err != nil {
			c.mu.Lock()
			c.readErr = err
			c.mu.Unlock()
			return
		}
		var m protocol.Message
		if err := json.Unmarshal(data, &m); err != nil {
			continue
		}
		switch m.Type {
		case protocol.TypeAssigned:
			c.closePCs()
			if !c.noMedia {
				c.setMediaErr(c.createPCs(m.ICEServers))
			}
		case protocol.TypeEnded:
			c.closePCs()
		case protocol.TypeOffer, protocol.TypeAnswer, protocol.TypeCandidate:
			c.setMediaErr(c.handleMedia(m))
			continue
		}
		select {
		case c.msgs <- m:
		default:
			// The caller stopped reading: failing loudly beats stalling the
			// media negotiation (and the server's pings) behind it.
			c.setMediaErr(errors.New("client: message buffer full; call Next"))
			return
		}
	}
}

// closePCs closes the current call's peer connections, if any.
func (c *Client) closePCs() {
	c.mu.Lock()
	pub, sub := c.pub, c.sub
	c.pub, c.sub = nil, nil
	clear(c.pending)
	c.mu.Unlock()
	for _, pc := range []*webrtc.PeerConnection{pub, sub} {
		if pc != nil {
			pc.Close()
		}
	}
}

func (c *Client) setMediaErr(err error) {
	if err == nil {
		return
	}
	c.mu.Lock()
	if c.mediaErr == nil {
		c.mediaErr = err
	}
	c.mu.Unlock()
}

func (c *Client) createPCs(servers []protocol.ICEServer) error {
	cfg := webrtc.Configuration{}
	if c.relayOnly {
		cfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	for _, s := range servers {
		cfg.ICEServers = append(cfg.ICEServers, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	pub, err := c.api.NewPeerConnection(cfg)
	if err != nil {
		return fmt.Errorf("create pub connection: %w", err)
	}
	sub, err := c.api.NewPeerConnection(cfg)
	if err != nil {
		pub.Close()
		return fmt.Errorf("create sub connection: %w", err)
	}
	for name, pc := range map[string]*webrtc.PeerConnection{protocol.PCPub: pub, protocol.PCSub: sub} {
		name := name
		pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
			if cand == nil {
				return
			}
			init := cand.ToJSON()
			_ = c.Send(c.ctx, protocol.Message{Type: protocol.TypeCandidate, PC: name, Candidate: &protocol.ICECandidate{
				Candidate: init.Candidate, SDPMid: init.SDPMid, SDPMLineIndex: init.SDPMLineIndex, UsernameFragment: init.UsernameFragment}})
		})
	}
	sub.OnTrack(func(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
		c.tracks.Add(1)
		if c.onTrack != nil {
			c.onTrack(t, r)
			c.ended.Add(1)
			return
		}
		c.countTrack(t)
	})
	c.mu.Lock()
	c.pub, c.sub = pub, sub
	c.mu.Unlock()
	return nil
}

// countTrack reads a received track until it ends, counting packets and
// keyframes.
func (c *Client) countTrack(t *webrtc.TrackRemote) {
	defer c.ended.Add(1)
	video := t.Kind() == webrtc.RTPCodecTypeVideo
	mime := t.Codec().MimeType
	if video {
		c.videoCodec.Store(mime)
	}
	for {
		p, _, err := t.ReadRTP()
		if err != nil {
			return
		}
		if !video {
			c.audio.Add(1)
			continue
		}
		c.video.Add(1)
		if rtpcodec.IsKeyframe(mime, p.Payload) {
			c.keyframes.Add(1)
		}
	}
}

func (c *Client) handleMedia(m protocol.Message) error {
	c.mu.Lock()
	pub, sub := c.pub, c.sub
	c.mu.Unlock()
	if pub == nil {
		return fmt.Errorf("%s before assigned", m.Type)
	}
	switch m.Type {
	case protocol.TypeAnswer: // for pub
		if err := pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.SDP}); err != nil {
			return fmt.Errorf("apply pub answer: %w", err)
		}
		return c.flush(protocol.PCPub, pub)
	case protocol.TypeOffer: // for sub
		if err := sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: m.SDP}); err != nil {
			return fmt.Errorf("apply sub offer: %w", err)
		}
		answer, err := sub.CreateAnswer(nil)
		if err != nil {
			return fmt.Errorf("create sub answer: %w", err)
		}
		if err := sub.SetLocalDescription(answer); err != nil {
			return fmt.Errorf("set sub answer: %w", err)
		}
		if err := c.Send(c.ctx, protocol.Message{Type: protocol.TypeAnswer, PC: protocol.PCSub, SDP: answer.SDP}); err != nil {
			return err
		}
		return c.flush(protocol.PCSub, sub)
	case protocol.TypeCandidate:
		if m.Candidate == nil {
			return nil
		}
		pc := pub
		if m.PC == protocol.PCSub {
			pc = sub
		}
		init := webrtc.ICECandidateInit{Candidate: m.Candidate.Candidate, SDPMid: m.Candidate.SDPMid,
			SDPMLineIndex: m.Candidate.SDPMLineIndex, UsernameFragment: m.Candidate.UsernameFragment}
		if pc.RemoteDescription() == nil {
			c.mu.Lock()
			c.pending[m.PC] = append(c.pending[m.PC], init)
			c.mu.Unlock()
			return nil
		}
		if err := pc.AddICECandidate(init); err != nil {
			return fmt.Errorf("add %s candidate: %w", m.PC, err)
		}
	}
	return nil
}

func (c *Client) flush(name string, pc *webrtc.PeerConnection) error {
	c.mu.Lock()
	cands := c.pending[name]
	delete(c.pending, name)
	c.mu.Unlock()
	for _, cand := range cands {
		if err := pc.AddICECandidate(cand); err != nil {
			return fmt.Errorf("add %s candidate: %w", name, err)
		}
	}
	return nil
}

// Publish adds tracks to the pub connection and offers them. Call it after
// the assigned message.
func (c *Client) Publish(ctx context.Context, tracks ...webrtc.TrackLocal) error {
	return c.PublishWith(ctx, func(pub *webrtc.PeerConnection) error {
		for _, t := range tracks {
			if _, err := pub.AddTransceiverFromTrack(t, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
				return fmt.Errorf("add track: %w", err)
			}
		}
		return nil
	})
}

// PublishWith lets add set up the pub connection (add tracks, simulcast
// encodings, RTCP readers) and then offers it. Call it after the assigned
// message.
func (c *Client) PublishWith(ctx context.Context, add func(pub *webrtc.PeerConnection) error) error {
	c.mu.Lock()
	pub := c.pub
	c.mu.Unlock()
	if pub == nil {
		return errors.New("publish before assigned")
	}
	if err := add(pub); err != nil {
		return err
	}
	return c.offerPub(ctx, pub)
}

// Unpublish stops sending every track of kind and renegotiates.
func (c *Client) Unpublish(ctx context.Context, kind webrtc.RTPCodecType) error {
	c.mu.Lock()
	pub := c.pub
	c.mu.Unlock()
	if pub == nil {
		return errors.New("unpublish before assigned")
	}
	for _, s := range pub.GetSenders() {
		if t := s.Track(); t != nil && t.Kind() == kind {
			if err := pub.RemoveTrack(s); err != nil {
				return fmt.Errorf("remove track: %w", err)
			}
		}
	}
	return c.offerPub(ctx, pub)
}

func (c *Client) offerPub(ctx context.Context, pub *webrtc.PeerConnection) error {
	offer, err := pub.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("create pub offer: %w", err)
	}
	if err := pub.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("set pub offer: %w", err)
	}
	c.tags.tagSenders(pub) // MIDs are set now; the answer, which starts the streams, comes later
	return c.Send(ctx, protocol.Message{Type: protocol.TypeOffer, PC: protocol.PCPub, SDP: offer.SDP})
}

// Go runs f on a goroutine that Close waits for; f must return when ctx
// (the client's lifetime) ends. Once Close has begun, f is not run.
func (c *Client) Go(f func(ctx context.Context)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f(c.ctx)
	}()
}
