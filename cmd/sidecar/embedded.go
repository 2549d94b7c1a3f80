package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"opscore-sidecar/opscore"
)

// embeddedCore is the Ops-Core core run in-process by --embedded-core.
type embeddedCore struct {
	svc *opscore.Service
	srv *http.Server
}

// startEmbeddedCore starts the core with its memory store on the host:port
// of upstreamURL, so the sidecar alone is a working stack. The API key is
// OPSCORE_API_KEY (the core warns and uses its public default when unset).
//
// The core keeps its own private registry (opscore.New's default), as it
// would in its own process: its /metrics (on the upstream port) shows only
// opscore_* and the admin /metrics only opscore_sidecar_*, so a Prometheus
// that scrapes both counts nothing twice and the dashboards work as with
// two processes.
func startEmbeddedCore(upstreamURL string, logger *slog.Logger) (*embeddedCore, error) {
	u, err := url.Parse(upstreamURL)
	if err != nil || u.Scheme != "http" {
		return nil, fmt.Errorf("--embedded-core needs an http upstream.url, got %q", upstreamURL)
	}
	svc, err := opscore.New(opscore.Options{
		Store: opscore.NewMemoryStore(), APIKey: os.Getenv("OPSCORE_API_KEY"), Logger: logger,
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", u.Host)
	if err != nil {
		svc.Close()
		return nil, fmt.Errorf("embedded core: listen on %s: %w", u.Host, err)
	}
	// The core's own server limits; the idle timeout is uvicorn's 5s, which
	// the sidecar's upstream pool (idle_conn_timeout 4s) is tuned for.
	srv := opscore.NewHTTPServer(opscore.Config{Listen: u.Host, IdleTimeout: 5 * time.Second}, svc.Handler())
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("embedded core stopped", "error", err)
		}
	}()
	logger.Info("embedded Ops-Core core started (memory store)", "listen", ln.Addr().String())
	return &embeddedCore{svc: svc, srv: srv}, nil
}

// stop shuts the core down after the sidecar has drained.
func (c *embeddedCore) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.srv.Shutdown(ctx)
	_ = c.svc.Close()
}
