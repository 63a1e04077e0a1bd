// The file's container format, fixed when its header is written: the
// name extension and content type the file is stored under.

package recorder

// Format is a file's container.
type Format struct {
	Ext         string // "webm", or "mkv" for H.264 video
	ContentType string // "video/webm", "video/x-matroska", or "audio/webm" without video
}

// formatFor is the container of a file with spec's tracks.
func formatFor(spec muxSpec) Format {
	if spec.video && spec.matroska {
		return Format{Ext: "mkv", ContentType: "video/x-matroska"}
	}
	if spec.video {
		return Format{Ext: "webm", ContentType: "video/webm"}
	}
	return Format{Ext: "webm", ContentType: "audio/webm"}
}

// Format is the file's container once its header is being written: it may
// be called from the Writer given to New, on its first Write. Before then
// it returns false.
func (r *Recording) Format() (Format, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.format, r.format.Ext != ""
}
