package client

import (
	"sync"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// pion sends simulcast encodings but does not mark their packets with the
// MID and RID header extensions, by which the receiver tells the layers
// apart. A client does: before each pub offer it records the MID and RID
// of every encoding by SSRC (tagSenders), and an interceptor stamps them
// on the encoding's packets.

type streamTag struct{ mid, rid string }

// streamTags maps an SSRC to its MID and RID; safe for concurrent use.
type streamTags struct{ m sync.Map }

// tagSenders records the encodings with a RID of pc's senders.
func (t *streamTags) tagSenders(pc *webrtc.PeerConnection) {
	for _, tr := range pc.GetTransceivers() {
		s := tr.Sender()
		if s == nil || tr.Mid() == "" {
			continue
		}
		for _, e := range s.GetParameters().Encodings {
			if e.RID != "" {
				t.m.Store(uint32(e.SSRC), streamTag{mid: tr.Mid(), rid: e.RID})
			}
		}
	}
}

type simulcastTagFactory struct{ tags *streamTags }

func (f simulcastTagFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &simulcastTagInterceptor{tags: f.tags}, nil
}

type simulcastTagInterceptor struct {
	interceptor.NoOp
	tags *streamTags
}

// BindLocalStream stamps MID and RID on the packets of a tagged stream.
func (i *simulcastTagInterceptor) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	v, ok := i.tags.m.Load(info.SSRC)
	if !ok {
		return w
	}
	tag := v.(streamTag)
	midID := extensionID(info.RTPHeaderExtensions, sdp.SDESMidURI)
	ridID := extensionID(info.RTPHeaderExtensions, sdp.SDESRTPStreamIDURI)
	if midID == 0 || ridID == 0 {
		return w
	}
	mid, rid := []byte(tag.mid), []byte(tag.rid)
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		if err := h.SetExtension(midID, mid); err != nil {
			return 0, err
		}
		if err := h.SetExtension(ridID, rid); err != nil {
			return 0, err
		}
		return w.Write(h, payload, a)
	})
}
