// The H.264 sequence parameter set (ITU-T H.264 section 7.3.2.1.1), read
// as far as the frame size: the picture size a recording's header gives,
// and the chroma format and bit depths the AVCDecoderConfigurationRecord
// of a high profile states.

package depack

// spsInfo is what parseSPS reads of an SPS.
type spsInfo struct {
	width, height  int
	chromaFormat   int // chroma_format_idc: 1 is 4:2:0
	bitDepthLuma   int
	bitDepthChroma int
}

// maxPictureSide bounds a picture's width and height (pixels); larger
// ones are taken as a malformed SPS.
const maxPictureSide = 16384

// highProfile reports whether an SPS of profile_idc p carries the chroma
// format and bit depths (and the AVCDecoderConfigurationRecord repeats
// them).
func highProfile(p byte) bool {
	switch p {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		return true
	}
	return false
}

// parseSPS reads an SPS NAL unit (its header byte first); ok is false for
// one that is malformed or truncated before its frame cropping.
func parseSPS(nal []byte) (spsInfo, bool) {
	info := spsInfo{chromaFormat: 1, bitDepthLuma: 8, bitDepthChroma: 8}
	if len(nal) < 4 || nal[0]&0x1f != nalSPS {
		return info, false
	}
	r := bitReader{b: unescape(nal[1:])}
	profile := byte(r.bits(8))
	r.bits(16) // constraint flags, level_idc
	r.ue()     // seq_parameter_set_id
	separatePlanes := false
	if highProfile(profile) {
		info.chromaFormat = int(r.ue())
		if info.chromaFormat > 3 {
			return info, false
		}
		if info.chromaFormat == 3 {
			separatePlanes = r.bits(1) == 1
		}
		luma, chroma := r.ue(), r.ue()
		if luma > 6 || chroma > 6 {
			return info, false
		}
		info.bitDepthLuma, info.bitDepthChroma = int(luma)+8, int(chroma)+8
		r.bits(1)           // qpprime_y_zero_transform_bypass_flag
		if r.bits(1) == 1 { // seq_scaling_matrix_present_flag
			lists := 8
			if info.chromaFormat == 3 {
				lists = 12
			}
			for i := range lists {
				if r.bits(1) == 1 {
					size := 16
					if i >= 6 {
						size = 64
					}
					r.skipScalingList(size)
				}
			}
		}
	}
	r.ue()          // log2_max_frame_num_minus4
	switch r.ue() { // pic_order_cnt_type
	case 0:
		r.ue() // log2_max_pic_order_cnt_lsb_minus4
	case 1:
		r.bits(1) // delta_pic_order_always_zero_flag
		r.se()    // offset_for_non_ref_pic
		r.se()    // offset_for_top_to_bottom_field
		n := r.ue()
		if n > 255 {
			return info, false
		}
		for range n {
			r.se()
		}
	}
	r.ue()    // max_num_ref_frames
	r.bits(1) // gaps_in_frame_num_value_allowed_flag
	wmbs := r.ue() + 1
	hmaps := r.ue() + 1
	frameMbsOnly := r.bits(1)
	if frameMbsOnly == 0 {
		r.bits(1) // mb_adaptive_frame_field_flag
	}
	r.bits(1) // direct_8x8_inference_flag
	var cl, cr, ct, cb uint64
	if r.bits(1) == 1 { // frame_cropping_flag
		cl, cr, ct, cb = r.ue(), r.ue(), r.ue(), r.ue()
	}
	if r.bad || wmbs > maxPictureSide/16 || hmaps > maxPictureSide/16 {
		return info, false
	}
	// The crop unit (section 7.4.2.1.1): chroma samples, fields.
	unitX, unitY := uint64(1), 2-frameMbsOnly
	if chromaArray := info.chromaFormat; !separatePlanes && chromaArray != 0 {
		if chromaArray != 3 {
			unitX = 2
		}
		if chromaArray == 1 {
			unitY *= 2
		}
	}
	w := wmbs * 16
	h := hmaps * 16 * (2 - frameMbsOnly)
	if h > maxPictureSide || cl > w || cr > w || ct > h || cb > h || unitX*(cl+cr) >= w || unitY*(ct+cb) >= h {
		return info, false
	}
	info.width, info.height = int(w-unitX*(cl+cr)), int(h-unitY*(ct+cb))
	return info, true
}

// unescape removes the emulation prevention bytes (00 00 03 -> 00 00).
func unescape(b []byte) []byte {
	out := make([]byte, 0, len(b))
	zeros := 0
	for _, c := range b {
		if zeros >= 2 && c == 3 {
			zeros = 0
			continue
		}
		out = append(out, c)
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return out
}

// bitReader reads an RBSP most significant bit first; reading past its
// end sets bad and yields zeros.
type bitReader struct {
	b   []byte
	pos int // in bits
	bad bool
}

func (r *bitReader) bits(n int) uint64 {
	var v uint64
	for range n {
		if r.pos >= 8*len(r.b) {
			r.bad = true
			return 0
		}
		v = v<<1 | uint64(r.b[r.pos/8]>>(7-r.pos%8)&1)
		r.pos++
	}
	return v
}

// ue reads an Exp-Golomb code (at most 32 leading zeros; more is bad).
func (r *bitReader) ue() uint64 {
	zeros := 0
	for r.bits(1) == 0 {
		if r.bad || zeros == 32 {
			r.bad = true
			return 0
		}
		zeros++
	}
	return 1<<zeros - 1 + r.bits(zeros)
}

// se reads a signed Exp-Golomb code.
func (r *bitReader) se() int64 {
	k := r.ue()
	if k%2 == 1 {
		return int64(k+1) / 2
	}
	return -int64(k / 2)
}

// skipScalingList reads past a scaling_list() of size entries.
func (r *bitReader) skipScalingList(size int) {
	last, next := int64(8), int64(8)
	for range size {
		if next != 0 {
			next = (last + r.se() + 256) % 256
		}
		if next != 0 {
			last = next
		}
	}
}
