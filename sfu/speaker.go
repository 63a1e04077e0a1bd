package sfu

import "github.com/pion/rtp"

// observeAudio is called for every audio packet a published track receives.
func (t *publishedTrack) observeAudio(h *rtp.Header) {}
