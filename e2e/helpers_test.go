package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"opscore-sidecar/e2e/harness"
)

// registrationBody is a REGISTER webhook body for agent id.
func registrationBody(id string) []byte {
	return fmt.Appendf(nil, `{"event_type":"REGISTER","agent_details":{"agentId":%q,"agentName":"e2e","version":"1.0","capabilities":[],"contactEndpoint":"http://127.0.0.1:9/","metadata":{}}}`, id)
}

// stateBody is a state update body for agent id.
func stateBody(id string) []byte {
	return fmt.Appendf(nil, `{"agentId":%q,"timestamp":"2026-01-01T00:00:00Z","state":"idle","details":null}`, id)
}

// sidecarMetric sums the samples of metric on the sidecar's admin
// /metrics whose labels include every one of the given label pairs
// (`route="notify"`); it returns 0 when there is none.
func sidecarMetric(t *testing.T, sidecar *harness.Proc, metric string, labels ...string) float64 {
	t.Helper()
	return scrapeSum(t, sidecar.AdminURL+"/metrics", metric, labels...)
}

// startSidecarWithConfigFile writes configYAML to sidecar.yaml in a new
// directory and starts a sidecar (opts) that reads it through
// SIDECAR_CONFIG, so the test can rewrite the file to make it reload. It
// returns the sidecar and the file's path.
func startSidecarWithConfigFile(t *testing.T, opts harness.SidecarOptions, configYAML string) (*harness.Proc, string) {
	t.Helper()
	opts.Dir = t.TempDir()
	cfgPath := filepath.Join(opts.Dir, "sidecar.yaml")
	if err := os.WriteFile(cfgPath, []byte(configYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	opts.Env = append(opts.Env, "SIDECAR_CONFIG="+cfgPath)
	return harness.StartSidecar(t, opts), cfgPath
}

// scrapeSum sums the samples of metric at the Prometheus endpoint url
// whose labels include every one of the given pairs; 0 when none.
func scrapeSum(t *testing.T, url, metric string, labels ...string) float64 {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		series, value, ok := strings.Cut(sc.Text(), " ")
		name, labelSet, _ := strings.Cut(series, "{")
		if !ok || name != metric {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(","+labelSet, ","+l)
		}
		value, _, _ = strings.Cut(value, " ")
		if v, err := strconv.ParseFloat(value, 64); match && err == nil {
			sum += v
		}
	}
	return sum
}
