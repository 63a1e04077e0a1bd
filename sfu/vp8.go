package sfu

import "github.com/helpcaster/helpcaster/rtpcodec"

// VP8 picture id and TL0PICIDX rewriting, so a subscriber sees one
// continuous stream across simulcast switches and dropped temporal layers.
// The descriptor itself is parsed by package rtpcodec.

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
	d, ok := rtpcodec.ParseVP8Descriptor(p)
	if !ok {
		return
	}
	if d.PictureIDAt != 0 {
		in := d.PictureID(p)
		if r.started {
			r.pidOff = (r.lastPID + 1 - in) & 0x7fff
		}
	}
	if d.TL0PICIDXAt != 0 {
		in := p[d.TL0PICIDXAt]
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
	d, ok := rtpcodec.ParseVP8Descriptor(p)
	if !ok {
		return false
	}
	r.rewriteDesc(p, d)
	return true
}

// rewriteDesc is rewrite for p's already parsed descriptor d.
func (r *vp8Rewriter) rewriteDesc(p []byte, d rtpcodec.VP8Descriptor) {
	if d.PictureIDAt != 0 {
		out := (d.PictureID(p) + r.pidOff) & 0x7fff
		if !d.PictureID15 {
			out &= 0x7f
		}
		d.SetPictureID(p, out)
		r.lastPID = out
	}
	if d.TL0PICIDXAt != 0 {
		p[d.TL0PICIDXAt] += r.tl0Off
		r.lastTL0 = p[d.TL0PICIDXAt]
	}
}

// track records the picture id and TL0PICIDX of a packet forwarded
// unchanged (identity offsets), so a later rebase can continue from them.
func (r *vp8Rewriter) track(p []byte) {
	if d, ok := rtpcodec.ParseVP8Descriptor(p); ok {
		r.trackDesc(p, d)
	}
}

// trackDesc is track for p's already parsed descriptor d.
func (r *vp8Rewriter) trackDesc(p []byte, d rtpcodec.VP8Descriptor) {
	if d.PictureIDAt != 0 {
		r.lastPID = d.PictureID(p)
	}
	if d.TL0PICIDXAt != 0 {
		r.lastTL0 = p[d.TL0PICIDXAt]
	}
}
