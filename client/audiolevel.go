package client

import (
	"strings"
	"sync/atomic"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// AudioLevel is the RFC 6464 audio level a Client announces on the audio it
// sends. pion's sample tracks neither measure nor send levels: a client given
// an AudioLevel (Options.AudioLevel) negotiates the audio level header
// extension and stamps every audio packet it sends with the level last set,
// so that a bot or a test can be heard by the SFU's speaker detection. It is
// safe for concurrent use.
type AudioLevel struct {
	b atomic.Uint32 // the extension's byte: V flag and level
}

// NewAudioLevel returns an AudioLevel announcing dBov (see Set).
func NewAudioLevel(dBov int, voice bool) *AudioLevel {
	l := &AudioLevel{}
	l.Set(dBov, voice)
	return l
}

// Set announces dBov decibels below full scale (0 is the loudest, 127 and
// more silence) from the next packet on, with the voice activity flag voice.
func (l *AudioLevel) Set(dBov int, voice bool) {
	b := uint32(min(max(dBov, 0), 127))
	if voice {
		b |= 0x80
	}
	l.b.Store(b)
}

// audioLevelFactory makes the interceptor that stamps the level.
type audioLevelFactory struct{ level *AudioLevel }

func (f audioLevelFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &audioLevelInterceptor{level: f.level}, nil
}

type audioLevelInterceptor struct {
	interceptor.NoOp
	level *AudioLevel
}

// BindLocalStream stamps the level on the packets of audio streams that
// negotiated the extension, and leaves other streams alone.
func (i *audioLevelInterceptor) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	if !strings.HasPrefix(strings.ToLower(info.MimeType), "audio/") {
		return w
	}
	id := extensionID(info.RTPHeaderExtensions, sdp.AudioLevelURI)
	if id == 0 {
		return w
	}
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		if err := h.SetExtension(id, []byte{byte(i.level.b.Load())}); err != nil {
			return 0, err
		}
		return w.Write(h, payload, a)
	})
}

// extensionID returns the one-byte header extension id negotiated for uri
// among exts (0: not negotiated).
func extensionID(exts []interceptor.RTPHeaderExtension, uri string) uint8 {
	for _, e := range exts {
		if e.URI == uri && e.ID > 0 && e.ID < 15 {
			return uint8(e.ID)
		}
	}
	return 0
}
