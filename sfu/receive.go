package sfu

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// A publisher's connection gets its receive-side RTP processing from the
// SFU, not from pion's interceptor chain, because its packets may arrive
// on either of two goroutines: the socket's reader (the direct media path,
// package wire) or the layer's own reader of pion's track (without the
// direct path; with it, what pion read before the route existed, and
// retransmissions until their SSRC is routed). Both call
// layer.receive, which runs this chain on the packet:
//
//   - pion's NACK generator and receiver reports, built from a registry per
//     connection and fed synchronously (their readers do no hand-off);
//   - transport-wide feedback, recorded here under a lock and sent by the
//     node's feedbackClock (pion's own sender interceptor hands every
//     packet to its goroutine through a channel, a wake-up per packet, and
//     runs a ticker per connection).
type receiveChain struct {
	chain  interceptor.Interceptor
	rtcpIn interceptor.RTCPReader
	twcc   *twccFeedback
}

// passThrough is the innermost reader of a bound chain: the caller passes
// the packet itself as the buffer, so "reading" it is returning its length.
func passThrough(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
	return len(b), a, nil
}

// newReceiveChain builds the chain of one publisher connection; write
// sends RTCP (NACKs, receiver reports, feedback) on that connection, and
// clock sends its feedback.
func newReceiveChain(reg *interceptor.Registry, id string, clock *feedbackClock, write func([]rtcp.Packet) error) (*receiveChain, error) {
	chain, err := reg.Build(id)
	if err != nil {
		return nil, fmt.Errorf("build receive interceptors: %w", err)
	}
	writer := interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, _ interceptor.Attributes) (int, error) {
		return 0, write(pkts)
	})
	chain.BindRTCPWriter(writer)
	return &receiveChain{
		chain:  chain,
		rtcpIn: chain.BindRTCPReader(interceptor.RTCPReaderFunc(passThrough)),
		twcc:   newTWCCFeedback(clock, write),
	}, nil
}

// bind returns the reader that runs the chain over one stream's packets.
func (c *receiveChain) bind(info *interceptor.StreamInfo) interceptor.RTPReader {
	return c.chain.BindRemoteStream(info, interceptor.RTPReaderFunc(passThrough))
}

func (c *receiveChain) unbind(info *interceptor.StreamInfo) { c.chain.UnbindRemoteStream(info) }

// rtcp lets the chain see one compound RTCP packet from the publisher
// (receiver reports need its sender reports).
func (c *receiveChain) rtcp(b []byte) { _, _, _ = c.rtcpIn.Read(b, nil) }

func (c *receiveChain) close() {
	c.twcc.close()
	_ = c.chain.Close()
}

// streamInfo describes a received stream to the chain.
func streamInfo(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) *interceptor.StreamInfo {
	codec := remote.Codec()
	info := &interceptor.StreamInfo{
		ID:          remote.ID(),
		SSRC:        uint32(remote.SSRC()),
		PayloadType: uint8(codec.PayloadType),
		MimeType:    codec.MimeType,
		ClockRate:   codec.ClockRate,
		Channels:    codec.Channels,
		SDPFmtpLine: codec.SDPFmtpLine,
	}
	for _, fb := range codec.RTCPFeedback {
		info.RTCPFeedback = append(info.RTCPFeedback, interceptor.RTCPFeedback{Type: fb.Type, Parameter: fb.Parameter})
	}
	for _, e := range recv.GetParameters().HeaderExtensions {
		info.RTPHeaderExtensions = append(info.RTPHeaderExtensions, interceptor.RTPHeaderExtension{URI: e.URI, ID: e.ID})
	}
	return info
}

// twccFeedbackInterval is how often transport-wide feedback is sent to a
// publisher (pion's default).
const twccFeedbackInterval = 100 * time.Millisecond

// feedbackClock sends every publisher connection's transport-wide feedback
// from one goroutine on one ticker: a node with a hundred publishers wakes
// ten times a second for it, not a thousand.
type feedbackClock struct {
	mu   sync.Mutex
	fbs  map[*twccFeedback]struct{}
	stop chan struct{}
	done chan struct{}
}

func newFeedbackClock() *feedbackClock {
	c := &feedbackClock{fbs: map[*twccFeedback]struct{}{}, stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c
}

func (c *feedbackClock) run() {
	defer close(c.done)
	t := time.NewTicker(twccFeedbackInterval)
	defer t.Stop()
	var due []*twccFeedback
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		due = due[:0]
		c.mu.Lock()
		for f := range c.fbs {
			due = append(due, f)
		}
		c.mu.Unlock()
		for _, f := range due {
			f.flush()
		}
	}
}

func (c *feedbackClock) add(f *twccFeedback) {
	c.mu.Lock()
	c.fbs[f] = struct{}{}
	c.mu.Unlock()
}

func (c *feedbackClock) remove(f *twccFeedback) {
	c.mu.Lock()
	delete(c.fbs, f)
	c.mu.Unlock()
}

// close stops the clock; the connections it served are closed already.
func (c *feedbackClock) close() {
	close(c.stop)
	<-c.done
}

// twccFeedback records the arrival of a publisher connection's packets by
// transport-wide sequence number; its clock reports them every
// twccFeedbackInterval, so the publisher's own estimator works.
type twccFeedback struct {
	mu    sync.Mutex
	rec   *twcc.Recorder
	start time.Time
	write func([]rtcp.Packet) error
	clock *feedbackClock
}

func newTWCCFeedback(clock *feedbackClock, write func([]rtcp.Packet) error) *twccFeedback {
	f := &twccFeedback{rec: twcc.NewRecorder(rand.Uint32()), start: time.Now(), write: write, clock: clock}
	clock.add(f)
	return f
}

// record notes that the packet of ssrc carrying transport-wide extension
// ext (its value) arrived at now. Malformed values are ignored.
func (f *twccFeedback) record(ssrc uint32, ext []byte, now time.Time) {
	if len(ext) < 2 {
		return
	}
	seq := binary.BigEndian.Uint16(ext)
	f.mu.Lock()
	f.rec.Record(ssrc, seq, now.Sub(f.start).Microseconds())
	f.mu.Unlock()
}

// flush sends what was recorded since the last flush.
func (f *twccFeedback) flush() {
	f.mu.Lock()
	pkts := f.rec.BuildFeedbackPacket()
	f.mu.Unlock()
	if len(pkts) > 0 {
		_ = f.write(pkts) // the connection may be closing
	}
}

func (f *twccFeedback) close() { f.clock.remove(f) }
