#!/usr/bin/env bash
# Regenerates the media that `helpcaster bench` publishers send (embedded in
# the binary, see media.go):
#   layer-q.ivf  VP8 320x180,  ~150 kbit/s  } three simulcast layers of one source,
#   layer-h.ivf  VP8 640x360,  ~500 kbit/s  } 30 fps, 10 s, a keyframe every 60 frames
#   layer-f.ivf  VP8 1280x720, ~1.2 Mbit/s  } (2 s), no alt-ref frames
#   layer-f-1800k.ivf  VP8 1280x720, ~1.8 Mbit/s } higher top layers (--bitrate 1800k, 2500k):
#   layer-f-2500k.ivf  VP8 1280x720, ~2.5 Mbit/s } 4 s each (two keyframe groups) to keep the
#                                                  binary small; looped like the others
#   video.h264   H.264 constrained baseline 640x360, ~500 kbit/s, 30 fps, 10 s, an IDR
#                (with SPS/PPS) every 60 frames, one slice per frame
#   audio.ogg    Opus 48 kHz mono, 10 s, 20 ms frames, one packet per Ogg page, ~32 kbit/s
# The source is ffmpeg's testsrc2 (moving), so the encoder keeps its rate.
# Needs ffmpeg with libvpx and libopus. Not byte-for-byte reproducible
# across ffmpeg versions: commit the regenerated files together.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v ffmpeg >/dev/null 2>&1; then
	echo "gen-media.sh: ffmpeg not found (apt-get install ffmpeg)" >&2
	exit 1
fi
ff=(ffmpeg -hide_banner -loglevel error -nostdin -y)

# -auto-alt-ref 0: every IVF frame is a displayed frame, as a WebRTC track
# sends them. Constant rate (min = max = target) so a layer's bitrate is
# what its name says; realtime mode as a browser's encoder.
vp8_layer() { # size bitrate output [seconds]
	"${ff[@]}" -f lavfi -i "testsrc2=size=$1:rate=30:duration=${4:-10}" \
		-an -c:v libvpx -b:v "$2" -minrate "$2" -maxrate "$2" -bufsize "$2" \
		-g 60 -keyint_min 60 -auto-alt-ref 0 -error-resilient 1 -deadline realtime -cpu-used 8 \
		-pix_fmt yuv420p -fflags +bitexact -flags +bitexact \
		-f ivf "$3.tmp"
	mv "$3.tmp" "$3"
}
vp8_layer 320x180 150k layer-q.ivf
vp8_layer 640x360 500k layer-h.ivf
vp8_layer 1280x720 1200k layer-f.ivf
vp8_layer 1280x720 1800k layer-f-1800k.ivf 4
vp8_layer 1280x720 2500k layer-f-2500k.ivf 4

"${ff[@]}" -f lavfi -i "testsrc2=size=640x360:rate=30:duration=10" \
	-an -c:v libx264 -profile:v baseline -level 3.1 -pix_fmt yuv420p -bf 0 -threads 1 \
	-x264-params "keyint=60:min-keyint=60:scenecut=0:slices=1:repeat-headers=1" \
	-b:v 500k -maxrate 500k -bufsize 500k -fflags +bitexact -flags +bitexact \
	-f h264 video.h264.tmp
mv video.h264.tmp video.h264

"${ff[@]}" -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=10" \
	-vn -ac 1 -ar 48000 -c:a libopus -b:a 32k -frame_duration 20 -application voip \
	-page_duration 20000 -fflags +bitexact -flags +bitexact -map_metadata -1 \
	-f ogg audio.ogg.tmp
mv audio.ogg.tmp audio.ogg

if command -v ffprobe >/dev/null 2>&1; then
	for f in layer-q.ivf layer-h.ivf layer-f.ivf layer-f-1800k.ivf layer-f-2500k.ivf video.h264 audio.ogg; do
		ffprobe -v error -show_entries stream=codec_name,width,height,sample_rate:format=duration,size,bit_rate \
			-of compact=p=0 "$f" | sed "s|^|$f: |"
	done
fi
