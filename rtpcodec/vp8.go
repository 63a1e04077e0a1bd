// The VP8 payload descriptor (RFC 7741 section 4.2): where its fields sit
// in an RTP payload, reading and writing them in place, where a picture
// starts, and the frame size a key frame carries.

package rtpcodec

// VP8Descriptor locates the fields of one packet's VP8 payload descriptor
// in its payload. An offset of 0 means the field is absent (the first
// octet of the descriptor is never one of them).
type VP8Descriptor struct {
	PictureIDAt   int  // offset of the picture id
	PictureID15   bool // the picture id is 15 bits wide (two octets), else 7 (one)
	TL0PICIDXAt   int  // offset of TL0PICIDX
	TIDAt         int  // offset of the TID/Y/KEYIDX octet
	HasTID        bool // that octet carries a TID (the T bit is set)
	PayloadHeader int  // length of the descriptor: offset of the VP8 payload header
}

// ParseVP8Descriptor parses the descriptor at the start of an RTP payload;
// ok is false when p is too short to hold it. It reads p and keeps nothing.
func ParseVP8Descriptor(p []byte) (d VP8Descriptor, ok bool) {
	if len(p) < 1 {
		return d, false
	}
	i := 1
	if p[0]&0x80 != 0 { // X
		if len(p) < 2 {
			return d, false
		}
		ext := p[1]
		i = 2
		if ext&0x80 != 0 { // I
			if len(p) <= i {
				return d, false
			}
			d.PictureIDAt = i
			if p[i]&0x80 != 0 { // M: 15-bit picture id
				d.PictureID15 = true
				i++
			}
			i++
		}
		if ext&0x40 != 0 { // L
			d.TL0PICIDXAt = i
			i++
		}
		if ext&0x30 != 0 { // T or K: they share one octet
			d.TIDAt = i
			d.HasTID = ext&0x20 != 0
			i++
		}
	}
	if len(p) < i {
		return d, false
	}
	d.PayloadHeader = i
	return d, true
}

// PictureID returns the picture id of p, whose descriptor is d; d must
// have one (PictureIDAt != 0).
func (d VP8Descriptor) PictureID(p []byte) uint16 {
	if d.PictureID15 {
		return uint16(p[d.PictureIDAt]&0x7f)<<8 | uint16(p[d.PictureIDAt+1])
	}
	return uint16(p[d.PictureIDAt] & 0x7f)
}

// SetPictureID writes id into p's picture id in place, keeping its width
// (a 7-bit id keeps the low 7 bits of id); d must have one.
func (d VP8Descriptor) SetPictureID(p []byte, id uint16) {
	if d.PictureID15 {
		p[d.PictureIDAt] = 0x80 | byte(id>>8)&0x7f
		p[d.PictureIDAt+1] = byte(id)
		return
	}
	p[d.PictureIDAt] = byte(id) & 0x7f
}

// Temporal returns the packet's temporal layer id and its layer sync bit
// (Y: the picture depends only on base layer pictures); ok is false when the
// descriptor carries no TID.
func (d VP8Descriptor) Temporal(p []byte) (tid int, sync, ok bool) {
	if !d.HasTID {
		return 0, false, false
	}
	return int(p[d.TIDAt] >> 6), p[d.TIDAt]&0x20 != 0, true
}

// VP8PictureStart reports whether p is the first packet of a picture (S set,
// partition index 0).
func VP8PictureStart(p []byte) bool { return len(p) > 0 && p[0]&0x10 != 0 && p[0]&0x0f == 0 }

// vp8Keyframe reports whether p starts partition 0 of a key frame: S set,
// partition index 0, and the P bit (bit 0 of the VP8 payload header's first
// octet) clear.
func vp8Keyframe(p []byte) bool {
	if len(p) < 1 || p[0]&0x10 == 0 || p[0]&0x07 != 0 {
		return false
	}
	d, ok := ParseVP8Descriptor(p)
	return ok && len(p) > d.PayloadHeader && p[d.PayloadHeader]&0x01 == 0
}

// VP8KeyframeSize returns the width and height from the first packet of a
// VP8 key frame (the uncompressed data chunk of RFC 6386 section 9.1); ok
// is false for any other packet.
func VP8KeyframeSize(p []byte) (w, h int, ok bool) {
	d, ok := ParseVP8Descriptor(p)
	if !ok || !vp8Keyframe(p) {
		return 0, 0, false
	}
	b := p[d.PayloadHeader:]
	if len(b) < 10 || b[3] != 0x9d || b[4] != 0x01 || b[5] != 0x2a {
		return 0, 0, false
	}
	w = int(uint16(b[6])|uint16(b[7])<<8) & 0x3fff
	h = int(uint16(b[8])|uint16(b[9])<<8) & 0x3fff
	return w, h, w > 0 && h > 0
}
