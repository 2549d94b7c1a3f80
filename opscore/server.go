package opscore

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// Server timeouts (docs/opscore.md, "Configuration"): a slow client cannot
// hold a connection forever, and the idle timeout stays above clients'
// think time.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	maxHeaderBytes    = 64 << 10
)

// NewHTTPServer returns the http.Server for h with the service's timeouts
// and header limit; IdleTimeout comes from c.
func NewHTTPServer(c Config, h http.Handler) *http.Server {
	idle := c.IdleTimeout
	if idle <= 0 {
		idle = DefaultConfig().IdleTimeout
	}
	return &http.Server{
		Addr:              c.Listen,
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idle,
		MaxHeaderBytes:    maxHeaderBytes,
	}
}

// CheckHealth GETs url and returns nil when it answers 200. It backs
// "opscore healthcheck" and "sidecar healthcheck", Docker's HEALTHCHECK in
// an image without a shell, so its errors name neither program.
func CheckHealth(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %d, want 200", url, resp.StatusCode)
	}
	return nil
}
