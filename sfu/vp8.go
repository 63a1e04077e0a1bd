package sfu

// VP8 payload descriptor handling (RFC 7741 section 4.2): where the picture
// id and TL0PICIDX sit, rewriting them so a subscriber sees one continuous
// stream across simulcast switches, and the frame size of key frames.

// vp8Desc locates the fields of one packet's VP8 payload descriptor.
type vp8Desc struct {
	pidAt  int // offset of the picture id; 0 when absent
	pid15  bool
	tl0At  int // offset of TL0PICIDX; 0 when absent
	tidAt  int // offset of the TID/Y/KEYIDX byte; 0 when absent
	hasTID bool
	header int // length of the descriptor (offset of the VP8 payload header)
}

// parseVP8Desc parses the descriptor at the start of an RTP payload.
func parseVP8Desc(p []byte) (d vp8Desc, ok bool) {
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
			d.pidAt = i
			if p[i]&0x80 != 0 {
				d.pid15 = true
				i++
			}
			i++
		}
		if ext&0x40 != 0 { // L
			d.tl0At = i
			i++
		}
		if ext&0x30 != 0 { // T or K
			d.tidAt = i
			d.hasTID = ext&0x20 != 0
			i++
		}
	}
	if len(p) < i {
		return d, false
	}
	d.header = i
	return d, true
}

func (d vp8Desc) pictureID(p []byte) uint16 {
	if d.pid15 {
		return uint16(p[d.pidAt]&0x7f)<<8 | uint16(p[d.pidAt+1])
	}
	return uint16(p[d.pidAt] & 0x7f)
}

// temporal returns the packet's temporal layer id and its layer sync bit
// (Y: the picture depends only on base layer pictures); ok is false when the
// descriptor carries no TID.
func (d vp8Desc) temporal(p []byte) (tid int, sync, ok bool) {
	if !d.hasTID {
		return 0, false, false
	}
	return int(p[d.tidAt] >> 6), p[d.tidAt]&0x20 != 0, true
}

// vp8PictureStart reports whether p is the first packet of a picture (S set,
// partition index 0).
func vp8PictureStart(p []byte) bool { return len(p) > 0 && p[0]&0x10 != 0 && p[0]&0x0f == 0 }

func (d vp8Desc) setPictureID(p []byte, id uint16) {
	if d.pid15 {
		p[d.pidAt] = 0x80 | byte(id>>8)&0x7f
		p[d.pidAt+1] = byte(id)
		return
	}
	p[d.pidAt] = byte(id) & 0x7f
}

// vp8KeyframeSize returns the width and height from the first packet of a
// VP8 key frame (the uncompressed data chunk of RFC 6386 section 9.1).
func vp8KeyframeSize(p []byte) (w, h int, ok bool) {
	d, ok := parseVP8Desc(p)
	if !ok || !vp8Keyframe(p) {
		return 0, 0, false
	}
	b := p[d.header:]
	if len(b) < 10 || b[3] != 0x9d || b[4] != 0x01 || b[5] != 0x2a {
		return 0, 0, false
	}
	w = int(uint16(b[6])|uint16(b[7])<<8) & 0x3fff
	h = int(uint16(b[8])|uint16(b[9])<<8) & 0x3fff
	return w, h, w > 0 && h > 0
}

// vp8Rewriter keeps picture ids and TL0PICIDX continuous for one down
// track. Picture ids count modulo 2^15 (a 7-bit id is kept 7 bits wide).
type vp8Rewriter struct {
	started  bool
	pidOff   uint16 // out = in + pidOff
	lastPID  uint16 // last outgoing picture id
	tl0Off   uint8
	lastTL0  uint8
	identity bool // both offsets are zero: nothing to rewrite
	// The last picture dropped for its temporal layer, so that each dropped
	// picture closes its gap in the picture ids once.
	dropped     bool
	lastDropped uint16
}

// rebase makes the next picture (the one in p) follow the last one sent.
func (r *vp8Rewriter) rebase(p []byte) {
	d, ok := parseVP8Desc(p)
	if !ok {
		return
	}
	if d.pidAt != 0 {
		in := d.pictureID(p)
		if r.started {
			r.pidOff = (r.lastPID + 1 - in) & 0x7fff
		}
	}
	if d.tl0At != 0 {
		in := p[d.tl0At]
		if r.started {
			r.tl0Off = r.lastTL0 + 1 - in
		}
	}
	r.started = true
	r.identity = r.pidOff == 0 && r.tl0Off == 0
	r.dropped = false // picture ids of the old source mean nothing now
}

// dropPicture records that the picture with incoming id pid is not
// forwarded (its temporal layer is off), so the ids of the pictures after it
// close the gap: a receiver sees consecutive picture ids and no loss.
func (r *vp8Rewriter) dropPicture(pid uint16) {
	if r.dropped && r.lastDropped == pid {
		return
	}
	r.dropped, r.lastDropped = true, pid
	r.pidOff = (r.pidOff - 1) & 0x7fff
	r.identity = false
}

// rewrite applies the offsets to the descriptor in p, which the caller owns.
// It reports false when p is not a valid VP8 payload.
func (r *vp8Rewriter) rewrite(p []byte) bool {
	d, ok := parseVP8Desc(p)
	if !ok {
		return false
	}
	r.rewriteDesc(p, d)
	return true
}

// rewriteDesc is rewrite for p's already parsed descriptor d.
func (r *vp8Rewriter) rewriteDesc(p []byte, d vp8Desc) {
	if d.pidAt != 0 {
		out := (d.pictureID(p) + r.pidOff) & 0x7fff
		if !d.pid15 {
			out &= 0x7f
		}
		d.setPictureID(p, out)
		r.lastPID = out
	}
	if d.tl0At != 0 {
		p[d.tl0At] += r.tl0Off
		r.lastTL0 = p[d.tl0At]
	}
}

// track records the picture id and TL0PICIDX of a packet forwarded
// unchanged (identity offsets), so a later rebase can continue from them.
func (r *vp8Rewriter) track(p []byte) {
	if d, ok := parseVP8Desc(p); ok {
		r.trackDesc(p, d)
	}
}

// trackDesc is track for p's already parsed descriptor d.
func (r *vp8Rewriter) trackDesc(p []byte, d vp8Desc) {
	if d.pidAt != 0 {
		r.lastPID = d.pictureID(p)
	}
	if d.tl0At != 0 {
		r.lastTL0 = p[d.tl0At]
	}
}
