package proxy

import (
	"strings"

	"opscore-sidecar/proxy/config"
)

// This file decides what the default route forwards: only the paths listed
// in routes.default.forward_paths (see config.RouteConfig.ForwardPaths in proxy/config/config.go and
// docs/sidecar.md, "Security"). Everything else the named routes do not
// match is answered 404 by the sidecar, so the public port does not expose
// the core's /metrics, /readyz or whatever else it serves.

// forwardedPath reports whether the default route forwards path under the
// list fps. A path with a "." or ".." segment is never forwarded: the
// upstream may resolve it out of the listed prefix (/v1/opscore/../metrics).
// It does not allocate.
func forwardedPath(fps []string, path string) bool {
	if config.HasDotSegment(path) {
		return false
	}
	for _, fp := range fps {
		if strings.HasSuffix(fp, "/") {
			if strings.HasPrefix(path, fp) {
				return true
			}
			continue
		}
		if rest, ok := strings.CutPrefix(path, fp); ok && (rest == "" || rest[0] == '/') {
			return true
		}
	}
	return false
}
