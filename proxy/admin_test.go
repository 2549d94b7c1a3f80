package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"opscore-sidecar/proxy/proxytest"
)

func TestAdminEndpoints(t *testing.T) {
	up := proxytest.New(t, proxytest.OK())
	cfg := testConfig(up.URL)
	cfg.Tracing.OTLPEndpoint = "" // nothing to export in tests
	env := startSidecar(t, cfg)
	do(t, newRequest(t, "GET", env.url+"/health", nil)) // one request so histograms have an exemplar

	tests := []struct {
		path   string
		accept string
		status int
		want   []string
	}{
		{"/healthz", "", 200, []string{`"ok"`}},
		{"/readyz", "", 200, []string{`"ready"`}},
		{"/metrics", "application/openmetrics-text; version=1.0.0", 200, []string{
			"opscore_sidecar_requests_total", "opscore_sidecar_build_info", "# EOF", `trace_id="`,
		}},
		{"/admin/config", "", 200, []string{`"upstream"`, `"idle_conn_timeout": "4s"`, up.URL}},
		{"/debug/pprof/", "", 200, []string{"goroutine"}},
		{"/nope", "", 404, nil},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			req := newRequest(t, "GET", env.admin+tt.path, nil)
			if tt.accept != "" {
				req.Header.Set("Accept", tt.accept)
			}
			resp, body := do(t, req)
			if resp.StatusCode != tt.status {
				t.Fatalf("status: got %d, want %d", resp.StatusCode, tt.status)
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("body lacks %q", w)
				}
			}
		})
	}
}

func TestAdminConfigIsRedactedJSON(t *testing.T) {
	up := proxytest.New(t, proxytest.OK())
	cfg := testConfig(up.URL)
	cfg.Tracing.OTLPEndpoint = "http://user:hunter2@127.0.0.1:1"
	env := startSidecar(t, cfg)
	resp, err := http.Get(env.admin + "/admin/config")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if strings.Contains(string(b), "hunter2") {
		t.Errorf("/admin/config shows a password: %s", b)
	}
	var doc struct {
		Config map[string]any `json:"config"`
	}
	if err := json.Unmarshal(b, &doc); err != nil || doc.Config["routes"] == nil {
		t.Errorf("/admin/config: got %s (%v), want JSON with config.routes", b, err)
	}
}

func TestAdminHandleAddsEndpoint(t *testing.T) {
	a := NewAdminServer(nil, nil, nil)
	a.Handle("GET /admin/extra", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "extra") }))
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, newRequest(t, "GET", "http://admin/admin/extra", nil))
	if rec.Body.String() != "extra" {
		t.Errorf("GET /admin/extra: got %q, want extra", rec.Body.String())
	}
}
