// Keyframe detection from RTP payloads: a decoder can start on a keyframe,
// so a subscriber joins or switches layers on one and a receiver measures
// the time to its first.

package rtpcodec

import "strings"

// MIME types of the codecs whose keyframes IsKeyframe finds, as pion
// spells them (webrtc.MimeTypeVP8, webrtc.MimeTypeH264); compared without
// regard to case.
const (
	mimeVP8  = "video/VP8"
	mimeH264 = "video/H264"
)

// IsKeyframe reports whether payload (an RTP payload, padding removed)
// starts a keyframe for the codec with MIME type mime (VP8 or H.264; false
// for others).
func IsKeyframe(mime string, payload []byte) bool {
	switch {
	case strings.EqualFold(mime, mimeVP8):
		return vp8Keyframe(payload)
	case strings.EqualFold(mime, mimeH264):
		return h264Keyframe(payload)
	default:
		return false
	}
}

// H.264 NAL unit types (RFC 6184).
const (
	naluIDR  = 5
	naluSPS  = 7
	naluSTAP = 24
	naluFUA  = 28
)

// h264Keyframe reports whether the packet carries an IDR slice start or an
// SPS (which precedes an IDR), as a single NAL unit, in a STAP-A aggregate or
// as the first fragment of an FU-A.
func h264Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	switch t := p[0] & 0x1f; t {
	case naluIDR, naluSPS:
		return true
	case naluSTAP:
		for i := 1; i+2 < len(p); {
			size := int(p[i])<<8 | int(p[i+1])
			i += 2
			if size == 0 || i+size > len(p) {
				return false
			}
			if nt := p[i] & 0x1f; nt == naluIDR || nt == naluSPS {
				return true
			}
			i += size
		}
		return false
	case naluFUA:
		if len(p) < 2 {
			return false
		}
		start := p[1]&0x80 != 0
		nt := p[1] & 0x1f
		return start && (nt == naluIDR || nt == naluSPS)
	default:
		return false
	}
}
