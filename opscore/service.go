package opscore

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultAPIKey is the bearer key used when none is configured, as in the
// original. New logs a loud warning when it is in use.
const DefaultAPIKey = "test-api-key"

// Options configure a Service. The zero value is a working service on a
// fresh MemoryStore with the default key and the built-in sample workflow.
type Options struct {
	// Store keeps the lifecycle data. Nil means a new MemoryStore.
	Store Store
	// APIKey is the bearer key of the authenticated routes. Empty means
	// DefaultAPIKey, with a warning in the log.
	APIKey string
	// Logger receives one line per request and the service's events. Nil
	// means slog.Default().
	Logger *slog.Logger
	// Registerer receives the core's collectors (NewMetrics). Nil means a
	// private registry. When the registerer is also a prometheus.Gatherer
	// (a *prometheus.Registry is), Handler serves it at GET /metrics.
	Registerer prometheus.Registerer
	// WorkflowFile is a JSON file with one workflow definition or an array
	// of them to preload. Empty means the built-in sample_workflow_id.
	WorkflowFile string
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Service is the Ops-Core core: the HTTP API over a Store.
type Service struct {
	store     Store
	apiKeySum [sha256.Size]byte // SHA-256 of the API key; the key itself is not kept
	log       *slog.Logger
	metrics   *Metrics
	preloaded map[string]WorkflowDefinition
	now       func() time.Time
	endpoints map[string]*endpoint
	// metricsHTTP serves the registerer when it is also a Gatherer; nil
	// otherwise, and then there is no /metrics route.
	metricsHTTP http.Handler
}

// preloadTimeout bounds the best-effort save of preloaded workflows at
// start, so a Redis that is down does not stop the service from starting.
const preloadTimeout = 2 * time.Second

// New builds a Service. It fails only on a bad WorkflowFile; a store that
// is unreachable at start is logged and the service starts anyway (it
// answers 503 until the store comes back, and /readyz says so).
func New(opts Options) (*Service, error) {
	// First, so a bad file leaves nothing behind: no warning logged, no
	// collectors registered with the caller's registerer.
	defs, err := loadWorkflows(opts.WorkflowFile)
	if err != nil {
		return nil, err
	}
	s := &Service{store: opts.Store, log: opts.Logger, now: opts.Now}
	if s.store == nil {
		s.store = NewMemoryStore()
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	key := opts.APIKey
	if key == "" {
		key = DefaultAPIKey
		s.log.Warn("OPSCORE_API_KEY is not set: using the public default key 'test-api-key'; " +
			"anyone who knows it can write agent states. Set OPSCORE_API_KEY in production.")
	}
	s.apiKeySum = sha256.Sum256([]byte(key))

	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s.metrics = NewMetrics(reg)
	if g, ok := reg.(prometheus.Gatherer); ok {
		s.metricsHTTP = promhttp.HandlerFor(g, promhttp.HandlerOpts{EnableOpenMetrics: true})
	}
	if rs, ok := s.store.(*RedisStore); ok {
		rs.attachMetrics(s.metrics)
	}

	s.preloaded = make(map[string]WorkflowDefinition, len(defs))
	ctx, cancel := context.WithTimeout(context.Background(), preloadTimeout)
	defer cancel()
	for _, d := range defs {
		s.preloaded[d.ID] = d
		if _, err := s.store.PutWorkflowDefinitionIfAbsent(ctx, d); err != nil {
			s.log.Warn("could not store a preloaded workflow definition; it is served from memory",
				slog.String("workflow_id", d.ID), slog.String("error", err.Error()))
		}
	}
	s.buildEndpoints()
	return s, nil
}

// Handler returns the whole API: /health, /readyz, /metrics (see
// Options.Registerer) and the /v1/opscore routes.
func (s *Service) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Close closes the store (for Redis, its connection pool). Call it after
// the HTTP server has shut down.
func (s *Service) Close() error { return s.store.Close() }

// lookupWorkflow finds a definition in the store, falling back to the
// preloaded ones (for when the start-up save failed or Redis was flushed).
func (s *Service) lookupWorkflow(ctx context.Context, id string) (WorkflowDefinition, error) {
	def, err := s.store.GetWorkflowDefinition(ctx, id)
	if errors.Is(err, ErrWorkflowNotFound) {
		if d, ok := s.preloaded[id]; ok {
			return d, nil
		}
	}
	return def, err
}
