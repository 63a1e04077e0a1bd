// Package mediaprobe checks recorded media files with ffprobe and ffmpeg,
// for the tests of the recorder and of what records through it.
package mediaprobe

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Need skips t when ffprobe or ffmpeg is missing, and fails it in CI
// (where scripts/install-test-deps.sh installs them).
func Need(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"ffprobe", "ffmpeg"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s missing (scripts/install-test-deps.sh installs ffmpeg)", tool)
			}
			t.Skipf("%s missing: run scripts/install-test-deps.sh to check recordings", tool)
		}
	}
}

// Info is what a file holds.
type Info struct {
	Codecs []string // its streams' codec names, sorted ("opus", "vp8")
	// Duration is the end of its last packet (a streamed file's header
	// gives none).
	Duration time.Duration
	// Frames counts packets by stream kind ("audio", "video").
	Frames map[string]int
}

// Probe reads path's streams and packets, and decodes it whole: an error
// printed by the decoder is Probe's error.
func Probe(path string) (Info, error) {
	info := Info{Frames: map[string]int{}}
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=index,codec_name,codec_type",
		"-of", "csv=p=0", path).Output()
	if err != nil {
		return info, fmt.Errorf("ffprobe streams of %s: %w", path, err)
	}
	kinds := map[string]string{}
	for _, line := range strings.Fields(string(out)) {
		f := strings.Split(line, ",")
		if len(f) < 3 {
			continue
		}
		info.Codecs = append(info.Codecs, f[1])
		kinds[f[0]] = f[2]
	}
	slices.Sort(info.Codecs)
	out, err = exec.Command("ffprobe", "-v", "error", "-show_entries", "packet=stream_index,pts_time,duration_time",
		"-of", "csv=p=0", path).Output()
	if err != nil {
		return info, fmt.Errorf("ffprobe packets of %s: %w", path, err)
	}
	var end float64
	for _, line := range strings.Fields(string(out)) {
		f := strings.Split(line, ",")
		if len(f) < 2 {
			continue
		}
		info.Frames[kinds[f[0]]]++
		pts, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		if len(f) > 2 {
			if d, err := strconv.ParseFloat(f[2], 64); err == nil {
				pts += d
			}
		}
		end = max(end, pts)
	}
	info.Duration = time.Duration(end * float64(time.Second))
	// The decoded frames keep the file's own time base (-enc_time_base
	// -1): in one guessed from the frame rate, two frames of a real-time
	// video less than a frame's time apart may round to the same tick, and
	// the null muxer reports that as an error though the file has none.
	dec, err := exec.Command("ffmpeg", "-v", "error", "-i", path, "-enc_time_base", "-1", "-f", "null", "-").CombinedOutput()
	if err != nil {
		return info, fmt.Errorf("ffmpeg decoding %s: %w: %s", path, err, dec)
	}
	if msg := strings.TrimSpace(string(dec)); msg != "" {
		return info, errors.New("ffmpeg decoding " + path + ": " + msg)
	}
	return info, nil
}
