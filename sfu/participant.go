package sfu

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/helpcaster/helpcaster/sfu/bwe"
	"github.com/helpcaster/helpcaster/sfu/wire"
)

// Names of a participant's two peer connections. "pub" carries what the
// participant sends (it offers); "sub" carries what it receives (the SFU
// offers). Two connections mean neither side ever has to resolve glare.
const (
	PCPub = "pub"
	PCSub = "sub"
)

// Signal is something the SFU needs relayed to a participant's client.
type Signal struct {
	PC        string                   // PCPub or PCSub
	Offer     string                   // an SDP offer for the sub connection
	Candidate *webrtc.ICECandidateInit // a local ICE candidate
	Failed    bool                     // the connection failed and will not recover
	Layers    *LayerState              // which simulcast layers to send (pc is PCPub)
}

// ErrBadSDP wraps errors caused by an SDP the client sent.
var ErrBadSDP = errors.New("sfu: bad SDP")

// ErrState is returned when a signal arrives that the connection cannot take now.
var ErrState = errors.New("sfu: unexpected signal")

// Limits on what one client may ask of the SFU.
const (
	// maxRemoteCandidates bounds the ICE candidates a client may give one
	// connection (each makes the SFU send connectivity checks).
	maxRemoteCandidates = 64
	// maxMediaSections bounds the m-lines of a client's pub offer.
	maxMediaSections = 8
	// maxPublishedTracks bounds the tracks one participant publishes at once.
	maxPublishedTracks = 4
)

// Participant is one member of a room with its pub and sub connections.
type Participant struct {
	room     *Room // told of the tracks it publishes and of its leaving
	id       string
	log      *slog.Logger
	onSignal func(Signal)
	pub, sub *webrtc.PeerConnection
	// The connections' direct media paths (nil without one, see
	// Config.PionMediaPath): pub's decrypts what the participant
	// publishes, sub's encrypts and sends what it receives.
	pubWire, subWire *wire.Conn
	recv             *receiveChain  // the pub connection's receive-side RTP processing
	bwe              *bwe.Estimator // the sub connection's estimate (nil if none)
	probe            prober         // used by the allocation loop only
	done             chan struct{}  // closed by Close

	// Given by the room when made, and handed on to the tracks it
	// publishes.
	metrics       *metrics
	speakers      *speakerDetector // the room's; nil: no speaker detection
	dynacastPause time.Duration

	pubMu sync.Mutex // serialises offers on pub

	mu             sync.Mutex
	closed         bool
	published      []*publishedTrack
	byReceiver     map[*webrtc.RTPReceiver]*publishedTrack
	downs          map[*publishedTrack]*downTrack
	senders        map[*publishedTrack]*webrtc.RTPSender
	awaitingAnswer bool
	offerPending   bool
	pendingCands   map[string][]webrtc.ICECandidateInit
	candCount      map[string]int
	maxQuality     int  // highest layer wanted for received video
	subReady       bool // the sub connection has connected (DTLS done)
	wg             sync.WaitGroup
}

func newParticipant(r *Room, id string, onSignal func(Signal)) (*Participant, error) {
	p := &Participant{
		room:         r,
		id:           id,
		log:          r.log.With("participant", id),
		onSignal:     onSignal,
		downs:        make(map[*publishedTrack]*downTrack),
		byReceiver:   make(map[*webrtc.RTPReceiver]*publishedTrack),
		senders:      make(map[*publishedTrack]*webrtc.RTPSender),
		pendingCands: make(map[string][]webrtc.ICECandidateInit),
		candCount:    make(map[string]int),
		maxQuality:   QualityHigh,
		done:         make(chan struct{}),

		metrics:       r.sfu.metrics,
		speakers:      r.speakers,
		dynacastPause: r.sfu.dynacastPause,
	}
	var err error
	if p.pub, _, p.pubWire, err = r.sfu.newPeerConnection(false); err != nil {
		return nil, fmt.Errorf("sfu: create pub connection: %w", err)
	}
	if p.sub, p.bwe, p.subWire, err = r.sfu.newPeerConnection(true); err != nil {
		p.pub.Close()
		return nil, fmt.Errorf("sfu: create sub connection: %w", err)
	}
	p.recv, err = newReceiveChain(r.sfu.recvIR, id, r.sfu.feedbackClock, func(pkts []rtcp.Packet) error { return p.pub.WriteRTCP(pkts) })
	if err != nil {
		p.pub.Close()
		p.sub.Close()
		return nil, fmt.Errorf("sfu: %w", err)
	}
	wires := map[string]*wire.Conn{PCPub: p.pubWire, PCSub: p.subWire}
	for name, pc := range map[string]*webrtc.PeerConnection{PCPub: p.pub, PCSub: p.sub} {
		name := name
		wc := wires[name]
		if wc != nil {
			ice := pc.SCTP().Transport().ICETransport()
			ice.OnSelectedCandidatePairChange(func(pair *webrtc.ICECandidatePair) { wc.Move(udpRemote(pair)) })
		}
		pc.OnICECandidate(func(c *webrtc.ICECandidate) {
			if c == nil {
				return
			}
			init := c.ToJSON()
			p.signal(Signal{PC: name, Candidate: &init})
		})
		pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
			p.log.Debug("connection state", "pc", name, "state", s.String())
			if s == webrtc.PeerConnectionStateFailed {
				p.signal(Signal{PC: name, Failed: true})
			}
			if s == webrtc.PeerConnectionStateConnected {
				p.startWire(name, pc, wc)
				if name == PCSub {
					p.subConnected()
				}
			}
		})
	}
	p.pub.OnTrack(p.handleTrack)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.allocateLoop()
	}()
	return p, nil
}

// allocateLoop runs the participant's periodic work until it closes: every
// allocInterval it shares its bandwidth estimate out among the tracks it
// receives and tells it which of its own layers to send (dynacast); every
// srInterval it sends sender reports.
func (p *Participant) allocateLoop() {
	t := time.NewTicker(allocInterval)
	defer t.Stop()
	var lastSR time.Time
	for {
		select {
		case <-p.done:
			return
		case now := <-t.C:
			p.reallocate(now)
			for _, t := range p.publishedTracks() {
				if p.pubWire != nil {
					t.routeRepairs(p.pubWire)
				}
				if st, changed := t.dynacast(now); changed {
					p.signal(Signal{PC: PCPub, Layers: &st})
				}
			}
			if now.Sub(lastSR) >= srInterval {
				// Allocation may have probed for tens of milliseconds:
				// reports are written as of when they leave.
				p.sendReports(time.Now())
				lastSR = now
			}
		}
	}
}

// sendReports sends a sender report for every down track that has sent
// media, in one compound packet.
func (p *Participant) sendReports(now time.Time) {
	downs := p.downTracks()
	var pkts []rtcp.Packet
	for _, d := range downs {
		if sr := d.senderReport(now); sr != nil {
			pkts = append(pkts, sr)
		}
	}
	if len(pkts) > 0 {
		_ = p.sub.WriteRTCP(pkts)
	}
}

// reallocate applies allocate to this participant's down tracks: audio
// first, then the active speaker's video, then other video in a stable
// order.
func (p *Participant) reallocate(now time.Time) {
	if p.bwe == nil {
		return // no estimate for this connection: forward what is asked for
	}
	budget := int64(p.bwe.Estimate())
	downs := p.downTracks()
	speaker := ""
	if p.speakers != nil {
		speaker = p.speakers.speaker()
	}
	sortByPriority(downs, speaker)

	var audio int64
	var videos []*downTrack
	var demands []videoDemand
	for _, d := range downs {
		rates := d.src.layerRates(now)
		if d.kind == webrtc.RTPCodecTypeAudio {
			audio += rates[0]
			continue
		}
		videos = append(videos, d)
		demands = append(demands, d.demand(rates, d.src.temporalRates(now, rates)))
	}
	m := p.metrics
	m.estimates.Observe(float64(budget))
	for i, c := range allocate(budget, audio, demands) {
		if c.spatial == layerNone {
			m.pausedVideo.Inc()
		}
		videos[i].setBandwidthLayer(c.spatial, now)
		videos[i].setBandwidthTemporal(c.temporal)
	}
	p.maybeProbe(now, budget, probeWant(audio, demands))
}

// ID is the participant's id in its room.
func (p *Participant) ID() string { return p.id }

// Offer applies the client's offer for the pub connection and returns the answer.
func (p *Participant) Offer(sdp string) (string, error) {
	p.pubMu.Lock()
	defer p.pubMu.Unlock()
	if p.isClosed() {
		return "", ErrClosed
	}
	if n := strings.Count(sdp, "\nm="); n > maxMediaSections {
		return "", fmt.Errorf("%w: offer has %d media sections; at most %d are accepted", ErrBadSDP, n, maxMediaSections)
	}
	if err := p.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		return "", fmt.Errorf("%w: apply offer: %v", ErrBadSDP, err)
	}
	answer, err := p.pub.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("%w: create answer: %v", ErrBadSDP, err)
	}
	if err := p.pub.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("sfu: set local answer: %w", err)
	}
	p.flushCandidates(PCPub, p.pub)
	return answer.SDP, nil
}

// Answer applies the client's answer to the SFU's last sub offer.
func (p *Participant) Answer(sdp string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if !p.awaitingAnswer {
		return fmt.Errorf("%w: answer without an outstanding offer", ErrState)
	}
	if err := p.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		// Go back to stable so later changes can be offered again.
		if rerr := p.sub.SetLocalDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeRollback}); rerr != nil {
			p.log.Debug("roll back sub offer", "err", rerr)
		}
		p.awaitingAnswer = false
		return fmt.Errorf("%w: apply answer: %v", ErrBadSDP, err)
	}
	p.awaitingAnswer = false
	for _, c := range p.pendingCands[PCSub] {
		_ = p.sub.AddICECandidate(c)
	}
	delete(p.pendingCands, PCSub)
	if p.offerPending {
		p.offerPending = false
		p.negotiateLocked()
	}
	return nil
}

// AddCandidate adds a client ICE candidate to connection pc. Candidates that
// arrive before the connection's remote description are held until it does.
func (p *Participant) AddCandidate(pc string, c webrtc.ICECandidateInit) error {
	var conn *webrtc.PeerConnection
	switch pc {
	case PCPub:
		conn = p.pub
	case PCSub:
		conn = p.sub
	default:
		return fmt.Errorf("%w: unknown connection %q", ErrState, pc)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if p.candCount[pc] >= maxRemoteCandidates {
		return fmt.Errorf("%w: more than %d candidates for one connection", ErrState, maxRemoteCandidates)
	}
	p.candCount[pc]++
	if conn.RemoteDescription() == nil {
		p.pendingCands[pc] = append(p.pendingCands[pc], c)
		return nil
	}
	if err := conn.AddICECandidate(c); err != nil {
		return fmt.Errorf("%w: candidate: %v", ErrBadSDP, err)
	}
	return nil
}

func (p *Participant) flushCandidates(name string, pc *webrtc.PeerConnection) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.pendingCands[name] {
		_ = pc.AddICECandidate(c)
	}
	delete(p.pendingCands, name)
}

func (p *Participant) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// handleTrack runs for each encoding the client publishes (one per
// simulcast layer), for the encoding's life. The first encoding of a track
// publishes it to the room; the track ends when its last encoding does.
func (p *Participant) handleTrack(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	index, ok := layerOfRID(remote.RID())
	if !ok {
		p.log.Warn("encoding refused: unknown simulcast rid; use q, h and f")
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	t := p.byReceiver[recv]
	isNew := t == nil
	if isNew {
		if len(p.published) >= maxPublishedTracks {
			p.mu.Unlock()
			p.log.Warn("track refused: publisher at its track limit", "limit", maxPublishedTracks)
			return
		}
		t = newPublishedTrack(trackEnv{publisher: p.id, metrics: p.metrics, speakers: p.speakers,
			dynacastPause: p.dynacastPause, sendPLI: p.sendPLI, recv: p.recv}, remote, recv)
		p.byReceiver[recv] = t
		p.published = append(p.published, t)
	}
	l := newLayer(t, index, remote)
	if t.kind == "video" {
		l.cache = newPacketCache()
	}
	if !t.addLayer(l) {
		p.mu.Unlock()
		p.log.Warn("encoding refused: layer already published", "layer", index)
		return
	}
	l.bind(recv)
	p.wg.Add(2)
	p.mu.Unlock()

	m := p.metrics
	go func() {
		defer p.wg.Done()
		l.readRTCP(recv)
	}()
	if isNew {
		m.published.WithLabelValues(t.kind).Inc()
		p.log.Debug("track published", "kind", t.kind, "codec", t.mime)
		p.room.trackPublished(p, t)
	}
	// From here the layer's packets may arrive on either path: the
	// direct one (the socket's reader) and pion's (l.run's reader, with
	// whatever pion read before the route existed, and retransmissions
	// until their SSRC is known).
	if p.pubWire != nil {
		p.pubWire.AddHandler(uint32(remote.SSRC()), l)
		l.routeRepairs(p.pubWire)
	}
	l.run()
	if p.pubWire != nil {
		p.pubWire.RemoveHandler(uint32(remote.SSRC()))
		l.unrouteRepairs(p.pubWire)
	}
	l.end()

	p.mu.Lock()
	last := t.removeLayer(l)
	if last {
		delete(p.byReceiver, recv)
		for i, o := range p.published {
			if o == t {
				p.published = append(p.published[:i], p.published[i+1:]...)
				break
			}
		}
	}
	p.mu.Unlock()
	if last {
		p.room.trackEnded(p, t)
		t.close()
		m.published.WithLabelValues(t.kind).Dec()
	}
	p.wg.Done()
}

// sendPLI asks the participant for a keyframe of its stream with SSRC ssrc.
func (p *Participant) sendPLI(ssrc uint32) {
	_ = p.pub.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
}

// readRTCP reads a receiver's RTCP for one layer (which also lets the
// interceptors see it) and keeps the publisher's sender reports.
func (l *layer) readRTCP(recv *webrtc.RTPReceiver) {
	buf := make([]byte, 1500)
	rid := l.remote.RID()
	for {
		var n int
		var err error
		if rid == "" {
			n, _, err = recv.Read(buf)
		} else {
			n, _, err = recv.ReadSimulcast(buf, rid)
		}
		if err != nil {
			return
		}
		l.track.recv.rtcp(buf[:n])
		if pkts, err := rtcp.Unmarshal(buf[:n]); err == nil {
			l.noteSenderReports(pkts, time.Now())
		}
	}
}

func (p *Participant) publishedTracks() []*publishedTrack {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*publishedTrack(nil), p.published...)
}

// downTracks lists the participant's down tracks.
func (p *Participant) downTracks() []*downTrack {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.downTracksLocked()
}

// downTracksLocked is downTracks with p.mu held.
func (p *Participant) downTracksLocked() []*downTrack {
	downs := make([]*downTrack, 0, len(p.downs))
	for _, d := range p.downs {
		downs = append(downs, d)
	}
	return downs
}

// subConnected starts the down tracks once the sub connection can carry
// media: pion drops what is written before DTLS completes, so forwarding
// earlier would lose the keyframe a subscriber must start on.
func (p *Participant) subConnected() {
	p.mu.Lock()
	p.subReady = true
	downs := p.downTracksLocked()
	p.mu.Unlock()
	for _, d := range downs {
		d.setConnected()
	}
}

// subscribe starts forwarding t to this participant.
func (p *Participant) subscribe(t *publishedTrack) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.downs[t] != nil {
		return
	}
	d := newDownTrack(t, p.metrics)
	d.bwe = p.bwe
	d.direct = p.subWire
	d.maxLayer = p.maxQuality
	d.connected = p.subReady
	tr, err := p.sub.AddTransceiverFromTrack(d, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		p.log.Warn("subscribe failed", "kind", t.kind, "err", err)
		return
	}
	if err := tr.SetCodecPreferences(codecPreferences(t.codec)); err != nil {
		p.log.Debug("codec preference not applied", "err", err)
	}
	p.downs[t] = d
	p.senders[t] = tr.Sender()
	p.metrics.subscribed.WithLabelValues(t.kind).Inc()
	t.addSink(d)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		d.readRTCP(tr.Sender(), p.metrics)
	}()
	p.negotiateLocked()
}

// Quality levels a subscriber may ask for, from lowest to highest.
const (
	QualityLow    = layerQuarter
	QualityMedium = layerHalf
	QualityHigh   = layerFull
)

// SetMaxQuality limits every video track this participant receives to at
// most quality q (QualityLow, QualityMedium or QualityHigh). It switches at
// the next keyframe of the chosen layer.
func (p *Participant) SetMaxQuality(q int) {
	q = max(QualityLow, min(q, QualityHigh))
	p.mu.Lock()
	p.maxQuality = q
	downs := p.downTracksLocked()
	p.mu.Unlock()
	for _, d := range downs {
		d.setMaxLayer(q)
	}
}

// QualityForSize returns the lowest quality whose frames (as last seen on
// the tracks this participant receives) are at least w×h, or the highest.
// Without known sizes it assumes the full layer is 1280×720 and each lower
// layer halves it.
func (p *Participant) QualityForSize(w, h int) int {
	p.mu.Lock()
	var src *publishedTrack
	for t := range p.downs {
		if t.kind == "video" {
			src = t
			break
		}
	}
	p.mu.Unlock()
	for q := QualityLow; q < QualityHigh; q++ {
		lw, lh := 0, 0
		if src != nil {
			lw, lh = src.layerSize(q)
		}
		if lw == 0 {
			lw, lh = 1280>>(QualityHigh-q), 720>>(QualityHigh-q)
		}
		if lw >= w && lh >= h {
			return q
		}
	}
	return QualityHigh
}

// unsubscribe stops forwarding t to this participant.
func (p *Participant) unsubscribe(t *publishedTrack) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.downs[t]
	if d == nil {
		return
	}
	t.removeSink(d)
	delete(p.downs, t)
	sender := p.senders[t]
	delete(p.senders, t)
	p.metrics.subscribed.WithLabelValues(t.kind).Dec()
	if p.closed {
		return
	}
	if err := p.sub.RemoveTrack(sender); err != nil {
		p.log.Debug("remove track", "err", err)
	}
	p.negotiateLocked()
}

// negotiateLocked sends a new sub offer, or marks one pending while the
// previous offer is unanswered. p.mu must be held.
func (p *Participant) negotiateLocked() {
	if p.closed {
		return
	}
	if p.awaitingAnswer {
		p.offerPending = true
		return
	}
	offer, err := p.sub.CreateOffer(nil)
	if err != nil {
		p.log.Warn("create sub offer", "err", err)
		return
	}
	if err := p.sub.SetLocalDescription(offer); err != nil {
		p.log.Warn("set sub offer", "err", err)
		return
	}
	p.awaitingAnswer = true
	p.onSignal(Signal{PC: PCSub, Offer: offer.SDP})
}

// signal hands sig to the participant's client, unless the participant
// has closed: its connections may still report a candidate afterwards, or
// fail (closing one mid-handshake fails it), and neither concerns the
// client any more, which may have a new participant by then.
func (p *Participant) signal(sig Signal) {
	select {
	case <-p.done:
	default:
		p.onSignal(sig)
	}
}

// Close leaves the room: both connections close, the participant's tracks
// are withdrawn from the others, and every goroutine it started has ended
// when Close returns.
func (p *Participant) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	downs := make([]*publishedTrack, 0, len(p.downs))
	for t := range p.downs {
		downs = append(downs, t)
	}
	p.mu.Unlock()

	close(p.done)
	for _, t := range downs {
		p.unsubscribe(t)
	}
	_ = p.pub.Close()
	_ = p.sub.Close()
	p.wg.Wait()
	p.recv.close()
	for _, wc := range []*wire.Conn{p.pubWire, p.subWire} {
		if wc != nil {
			wc.Close()
		}
	}
	p.room.leave(p)
}

// startWire moves a connection's media to the direct path once it has
// connected (its DTLS handshake is done). A connection whose keys the SFU
// could not learn, or whose selected pair is not UDP, stays with pion.
func (p *Participant) startWire(name string, pc *webrtc.PeerConnection, wc *wire.Conn) {
	if wc == nil {
		return
	}
	pair, err := pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil {
		return
	}
	cryptex := false
	if d := pc.CurrentRemoteDescription(); d != nil {
		cryptex = declaresCryptex(d.SDP)
	}
	if err := wc.Start(udpRemote(pair), cryptex); err != nil {
		p.log.Debug("media stays on pion's path", "pc", name, "err", err)
		p.metrics.pionPath.Inc()
		return
	}
	// RTCP too: pion's readers of it (layer.readRTCP, downTrack.readRTCP)
	// then wait, idle, until the connection closes.
	if name == PCPub {
		wc.SetRTCPHandler(p.publisherRTCP)
	} else {
		wc.SetRTCPHandler(p.subscriberRTCP)
	}
}

// publisherRTCP acts on a compound RTCP packet from the publisher's
// connection on the direct path: its sender reports reach the receive
// chain (for receiver reports) and the layers (for the down tracks').
func (p *Participant) publisherRTCP(b []byte, now time.Time) {
	p.recv.rtcp(b)
	pkts, err := rtcp.Unmarshal(b)
	if err != nil {
		return
	}
	for _, t := range p.publishedTracks() {
		for i := range t.layers {
			if l := t.layers[i].Load(); l != nil {
				l.noteSenderReports(pkts, now)
			}
		}
	}
}

// subscriberRTCP acts on a compound RTCP packet from the subscriber's
// connection on the direct path, as pion's readers would: transport-wide
// feedback goes to the connection's estimator, everything else to the down
// tracks it names.
func (p *Participant) subscriberRTCP(b []byte, now time.Time) {
	downs := p.downTracks()
	forEachRTCP(b, func(pt, count uint8, pkt []byte) {
		if pt == rtcpTypeTransportFeedback && count == rtcpFmtTransportCC {
			if p.bwe != nil {
				_ = p.bwe.Feedback(pkt, now) // malformed feedback is ignored
			}
			return
		}
		pkts, err := rtcp.Unmarshal(pkt)
		if err != nil {
			return
		}
		for _, r := range pkts {
			for _, d := range downs {
				if d.names(r.DestinationSSRC()) {
					d.handleRTCP(r, p.metrics)
				}
			}
		}
	})
}

// declaresCryptex reports whether an SDP has a=cryptex (RFC 9335) at
// session or media level: its author can receive packets whose header
// extensions are encrypted.
func declaresCryptex(sdp string) bool {
	return strings.Contains(sdp, "\na=cryptex\r") || strings.Contains(sdp, "\na=cryptex\n")
}

// udpRemote is the remote address of a UDP candidate pair; the zero
// AddrPort for a pair over TCP or none.
func udpRemote(pair *webrtc.ICECandidatePair) netip.AddrPort {
	if pair == nil || pair.Remote == nil || pair.Remote.Protocol != webrtc.ICEProtocolUDP {
		return netip.AddrPort{}
	}
	a, err := netip.ParseAddr(pair.Remote.Address)
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a.Unmap(), pair.Remote.Port)
}
