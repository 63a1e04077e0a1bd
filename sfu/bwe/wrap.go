package bwe

// Wraparound helpers. Transport-wide sequence numbers are 16 bits and the
// feedback reference time is 24 bits; the estimator works with int64
// extensions of both.

// extendSeqBefore returns the extended sequence number whose low 16 bits are
// seq and which is the closest one at or before ref (ref-65535 .. ref).
// Feedback only ever describes packets already sent, so the newest sent
// extended sequence number is the natural reference.
func extendSeqBefore(seq uint16, ref int64) int64 {
	return ref - int64(uint16(ref)-seq)
}

// extendRef returns the unwrapped 24-bit reference time (in 64 ms ticks)
// nearest to prev whose low 24 bits equal raw.
func extendRef(raw int64, prev int64) int64 {
	const (
		span = 1 << refTimeBits
		mask = span - 1
	)
	d := (raw - prev) & mask
	if d >= span/2 {
		d -= span
	}
	return prev + d
}
