package sfu

import "strings"

// Keyframe detection from RTP payloads, so a new subscriber starts on a
// picture its decoder can use.

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

// vp8Keyframe parses the VP8 payload descriptor (RFC 7741 section 4.2) and
// reports whether the packet starts partition 0 of a key frame.
func vp8Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	x := p[0]&0x80 != 0
	s := p[0]&0x10 != 0
	pid := p[0] & 0x07
	if !s || pid != 0 {
		return false
	}
	i := 1
	if x {
		if len(p) < 2 {
			return false
		}
		ext := p[1]
		i = 2
		if ext&0x80 != 0 { // I: picture id
			if len(p) <= i {
				return false
			}
			if p[i]&0x80 != 0 { // M: 15-bit picture id
				i++
			}
			i++
		}
		if ext&0x40 != 0 { // L: TL0PICIDX
			i++
		}
		if ext&0x30 != 0 { // T or K: TID/Y/KEYIDX byte
			i++
		}
	}
	if len(p) <= i {
		return false
	}
	// VP8 payload header: the P bit (bit 0 of the first byte) is 0 for key frames.
	return p[i]&0x01 == 0
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
