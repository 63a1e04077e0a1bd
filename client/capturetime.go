package client

import (
	"encoding/binary"
	"time"

	"github.com/helpcaster/helpcaster/rtpcodec"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// A client with Options.CaptureTime negotiates the absolute capture time
// header extension and stamps every packet it sends with the time it
// left the client (as capture time). The SFU forwards the extension, so a
// receiver on the same clock measures each packet's end-to-end latency
// (see CaptureTime).

// ntpEpochOffset is the seconds from 1900 (NTP) to 1970 (Unix).
const ntpEpochOffset = 2208988800

// ntpTime is t as a 64-bit NTP timestamp (32.32 fixed point seconds).
func ntpTime(t time.Time) uint64 {
	secs := uint64(t.Unix() + ntpEpochOffset)
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return secs<<32 | frac
}

// CaptureTime reads the capture time out of a packet header, given the
// negotiated extension id; ok is false when the packet carries none.
func CaptureTime(h *rtp.Header, id uint8) (t time.Time, ok bool) {
	if id == 0 {
		return time.Time{}, false
	}
	v := h.GetExtension(id)
	if len(v) < 8 {
		return time.Time{}, false
	}
	ntp := binary.BigEndian.Uint64(v)
	secs := int64(ntp>>32) - ntpEpochOffset
	nanos := int64((ntp & 0xFFFFFFFF) * 1e9 >> 32)
	return time.Unix(secs, nanos), true
}

// ReceivedCaptureTimeID returns the id the absolute capture time extension
// has on a received track (0: not negotiated).
func ReceivedCaptureTimeID(recv *webrtc.RTPReceiver) uint8 {
	for _, e := range recv.GetParameters().HeaderExtensions {
		if e.URI == rtpcodec.AbsCaptureTimeURI && e.ID > 0 && e.ID < 15 {
			return uint8(e.ID)
		}
	}
	return 0
}

type captureTimeFactory struct{}

func (captureTimeFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &captureTimeInterceptor{}, nil
}

type captureTimeInterceptor struct{ interceptor.NoOp }

// BindLocalStream stamps the send time on the packets of streams that
// negotiated the extension.
func (*captureTimeInterceptor) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	id := extensionID(info.RTPHeaderExtensions, rtpcodec.AbsCaptureTimeURI)
	if id == 0 {
		return w
	}
	var buf [8]byte // writes to one stream come one at a time
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		binary.BigEndian.PutUint64(buf[:], ntpTime(time.Now()))
		if err := h.SetExtension(id, buf[:]); err != nil {
			return 0, err
		}
		return w.Write(h, payload, a)
	})
}
