package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"opscore-sidecar/metrics"
	"opscore-sidecar/proxy/config"
	"opscore-sidecar/proxy/outbox"
)

// OpenOutbox opens the store that cfg.Outbox names: the bolt file
// <dir>/outbox.db, or the Redis stream. It returns nil, nil when the
// outbox is disabled.
func OpenOutbox(ctx context.Context, cfg config.OutboxConfig) (outbox.Store, error) {
	if !cfg.Enabled {
		return nil, nil
	}
	lim := outbox.Limits{MaxMessages: cfg.MaxMessages, MaxBytes: cfg.MaxBytes}
	switch cfg.Backend {
	case config.OutboxBolt:
		st, err := outbox.OpenBolt(filepath.Join(cfg.Dir, "outbox.db"), lim)
		if err != nil {
			return nil, fmt.Errorf("outbox.dir: %w", err)
		}
		return st, nil
	case config.OutboxRedis:
		st, err := outbox.OpenRedis(ctx, outbox.RedisOptions{
			URL: cfg.RedisURL, Stream: cfg.Stream, Group: cfg.Group, Lease: cfg.Lease, Limits: lim,
		})
		if err != nil {
			return nil, fmt.Errorf("outbox.redis_url: %w", err)
		}
		return st, nil
	}
	return nil, fmt.Errorf("outbox.backend: unknown backend %q", cfg.Backend)
}

// outboxRunner is the running outbox: the store, its deliverer and the
// gauges' updater. It belongs to a Server.
type outboxRunner struct {
	store  outbox.Store
	cancel context.CancelFunc
	done   chan struct{}
}

// AttachOutbox makes s accept requests into st (answering 202) and starts
// delivering them to the upstream; the returned runner stops both. st is
// owned by the runner from now on.
func (s *Sidecar) attachOutbox(st outbox.Store, cfg config.OutboxConfig) *outboxRunner {
	m := s.deps.Metrics
	d := outbox.NewDeliverer(st, s.deliver, outbox.DelivererOptions{
		BackoffBase: cfg.BackoffBase, BackoffMax: cfg.BackoffMax,
		Ready:  func() bool { return !s.health.down() },
		Logger: s.deps.Logger,
		Observer: outbox.Observer{
			Attempt: func(_ *outbox.Message, status int, err error) {
				m.OutboxDeliveryAttempts.WithLabelValues(deliveryResult(status, err)).Inc()
			},
			Delivered: func(msg *outbox.Message, latency time.Duration) {
				m.OutboxDelivered.WithLabelValues(routeLabel(msg.Route)).Inc()
				m.OutboxDeliveryLatency.Observe(latency.Seconds())
			},
			Dead: func(msg *outbox.Message, reason string) {
				m.OutboxDeadLetters.WithLabelValues(routeLabel(msg.Route)).Inc() // the deliverer logs it
			},
		},
	})
	s.queue.Store(newOutboxQueue(st, d, m, s.deps.Logger))
	ctx, cancel := context.WithCancel(context.Background())
	r := &outboxRunner{store: st, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		delivered := make(chan struct{})
		go func() { defer close(delivered); d.Run(ctx) }()
		defer func() { <-delivered }() // the store is closed only once Run has returned
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			updateOutboxGauges(ctx, st, m, s.deps.Logger)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return r
}

// close stops delivering and closes the store. Queued messages stay in
// it for the next start.
func (r *outboxRunner) close() error {
	r.cancel()
	<-r.done
	return r.store.Close()
}

func updateOutboxGauges(ctx context.Context, st outbox.Store, m *metrics.Metrics, logger *slog.Logger) {
	stats, err := st.Stats(ctx)
	if err != nil {
		if ctx.Err() == nil {
			logger.Warn("outbox: stats", "error", err)
		}
		return
	}
	m.OutboxDepth.Set(float64(stats.Depth))
	m.OutboxDead.Set(float64(stats.Dead))
	age := 0.0
	if !stats.Oldest.IsZero() {
		age = max(time.Since(stats.Oldest).Seconds(), 0)
	}
	m.OutboxOldestAge.Set(age)
}

// deliveryResult is the result label of one delivery attempt.
func deliveryResult(status int, err error) string {
	switch {
	case err != nil || status == 0:
		return "error"
	case status >= 500:
		return "http_5xx"
	case status >= 400:
		return "http_4xx"
	}
	return "ok"
}

// routeLabel keeps a stored route name within the bounded label set.
func routeLabel(route string) string {
	for _, n := range config.RouteNames {
		if n == route {
			return route
		}
	}
	return config.RouteDefault
}

// outboxAdmin serves /admin/outbox on the admin server:
//
//	GET  /admin/outbox                         stats, the oldest queued messages and the dead letters (bodies omitted; ?limit=N, default 100)
//	POST /admin/outbox/dead/{id}/retry         move a dead letter back to the tail of the queue
func (s *Sidecar) outboxAdmin(st outbox.Store) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/outbox", func(w http.ResponseWriter, r *http.Request) {
		limit := 100
		if v := r.URL.Query().Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 10000 {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "limit must be an integer between 1 and 10000"})
				return
			}
			limit = n
		}
		stats, err := st.Stats(r.Context())
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
			return
		}
		queued, err := st.List(r.Context(), limit)
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
			return
		}
		dead, err := st.Dead(r.Context(), limit)
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"depth": stats.Depth, "bytes": stats.Bytes, "dead_letters": stats.Dead,
			"oldest_age_seconds": ageSeconds(stats.Oldest),
			"queued":             summaries(queued), "dead": summaries(dead),
		})
	})
	mux.HandleFunc("POST /admin/outbox/dead/{id}/retry", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		switch err := st.RetryDead(r.Context(), id); {
		case err == nil:
			if q := s.queue.Load(); q != nil {
				q.deliverer.Kick()
			}
			writeJSON(w, http.StatusOK, map[string]string{"retried": id})
		case errors.Is(err, outbox.ErrNotFound):
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no dead letter " + strconv.Quote(id)})
		case errors.Is(err, outbox.ErrFull):
			writeJSON(w, http.StatusConflict, map[string]string{"error": "the outbox is full"})
		default:
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		}
	})
	return mux
}

func ageSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return time.Since(t).Seconds()
}

// messageSummary is a message as /admin/outbox shows it: no body and no
// headers (they may carry an API key).
type messageSummary struct {
	ID         string    `json:"id"`
	Route      string    `json:"route"`
	Method     string    `json:"method"`
	Path       string    `json:"path"`
	AgentID    string    `json:"agent_id,omitempty"`
	RequestID  string    `json:"request_id,omitempty"`
	Enqueued   time.Time `json:"enqueued"`
	Attempts   int       `json:"attempts"`
	BodyBytes  int       `json:"body_bytes"`
	LastError  string    `json:"last_error,omitempty"`
	DeadReason string    `json:"dead_reason,omitempty"`
}

func summaries(ms []outbox.Message) []messageSummary {
	out := make([]messageSummary, 0, len(ms))
	for _, m := range ms {
		out = append(out, messageSummary{
			ID: m.ID, Route: m.Route, Method: m.Method, Path: m.Path, AgentID: m.AgentID, RequestID: m.RequestID,
			Enqueued: m.Enqueued, Attempts: m.Attempts, BodyBytes: len(m.Body), LastError: m.LastError, DeadReason: m.DeadReason,
		})
	}
	return out
}
