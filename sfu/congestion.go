package sfu

import (
	"time"

	"github.com/pion/interceptor"

	"github.com/helpcaster/helpcaster/sfu/bwe"
)

// Congestion control for subscribers. Every connection gets a send-side
// bandwidth estimator (package bwe). Down tracks stamp each packet they send
// with the connection's transport-wide sequence number and record it in the
// estimator (downTrack.stamp); the subscriber's transport-wide feedback
// reaches the estimator through feedbackInterceptor, which sees all of a
// connection's incoming RTCP whatever SSRC it names. Nothing of this sits in
// pion's per-packet interceptor chain.

// feedbackInterceptor hands a connection's transport-wide feedback to its
// estimator. pion builds one per connection through feedbackFactory.
type feedbackInterceptor struct {
	interceptor.NoOp
	est *bwe.Estimator
}

func (f *feedbackInterceptor) BindRTCPReader(r interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := r.Read(b, a)
		if err != nil {
			return n, a, err
		}
		now := time.Now()
		forEachRTCP(b[:n], func(pt, count uint8, pkt []byte) {
			if pt == rtcpTypeTransportFeedback && count == rtcpFmtTransportCC {
				_ = f.est.Feedback(pkt, now) // malformed feedback is ignored
			}
		})
		return n, a, nil
	})
}

// feedbackFactory creates the estimator and interceptor of each
// subscriber's connection. The SFU reads the estimator created right after
// pion builds a connection (SFU.newPeerConnection serialises that).
type feedbackFactory struct {
	initial int // bits/s
	last    *bwe.Estimator
}

func (f *feedbackFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	est := bwe.New(bwe.Config{Initial: f.initial, Min: minEstimate, Max: maxEstimate})
	f.last = est
	return &feedbackInterceptor{est: est}, nil
}

// RTCP packet types and formats the SFU looks for without a full parse.
const (
	rtcpTypeTransportFeedback = 205 // RTPFB
	rtcpFmtTransportCC        = 15
)

// forEachRTCP calls fn for each packet of the compound RTCP packet b, with
// its type, its count/format field and its bytes. It stops at the first
// malformed header.
func forEachRTCP(b []byte, fn func(pt, count uint8, pkt []byte)) {
	for len(b) >= 4 {
		if b[0]>>6 != 2 {
			return
		}
		size := (int(b[2])<<8 | int(b[3]) + 1) * 4
		if size > len(b) {
			return
		}
		fn(b[1], b[0]&0x1f, b[:size])
		b = b[size:]
	}
}
