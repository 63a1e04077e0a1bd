// This file holds the framing of the muxer's output into whole EBML
// elements. ebml-go writes an element's ID, its size and its body in
// separate writes; a write refused between them (storage's spool full) or
// a process killed between them would end the file inside an element,
// which decoders reject ("File ended prematurely"). The muxer's output is
// therefore passed on only in whole units, each run of them in one write.

package recorder

import "math/bits"

// wholeUnits returns the length of b's longest prefix made of whole units:
// an element of known size with its body, or the header (ID and size) of
// an element of unknown size, such as the live Segment and Clusters, whose
// children follow as units of their own. ok is false when b does not parse
// as EBML.
func wholeUnits(b []byte) (n int, ok bool) {
	for {
		rest := b[n:]
		if len(rest) == 0 {
			return n, true
		}
		idLen := vintLen(rest[0])
		if idLen == 0 || idLen > 4 {
			return n, false
		}
		if len(rest) <= idLen {
			return n, true
		}
		sizeLen := vintLen(rest[idLen])
		if sizeLen == 0 {
			return n, false
		}
		if len(rest) < idLen+sizeLen {
			return n, true
		}
		size := uint64(rest[idLen] & (0xff >> sizeLen))
		for _, c := range rest[idLen+1 : idLen+sizeLen] {
			size = size<<8 | uint64(c)
		}
		unit := uint64(idLen + sizeLen)
		if size != 1<<(7*sizeLen)-1 { // all ones: unknown size
			unit += size
		}
		if uint64(len(rest)) < unit {
			return n, true
		}
		n += int(unit)
	}
}

// vintLen is the length of the EBML variable-length integer whose first
// byte is first: one more than its leading zero bits (0 for a zero byte,
// which starts none).
func vintLen(first byte) int {
	if first == 0 {
		return 0
	}
	return bits.LeadingZeros8(first) + 1
}
