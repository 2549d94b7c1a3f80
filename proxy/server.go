package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"opscore-sidecar/metrics"
	"opscore-sidecar/proxy/config"
	"opscore-sidecar/proxy/outbox"
)

// RunOptions is everything Start needs. Only Config is required.
type RunOptions struct {
	// Config is the validated configuration to start with.
	Config *config.Config
	// Load says where Config came from; when Load.Path is set and
	// reload.enabled is true, the file is watched and hot-reloaded.
	Load config.LoadOptions
	// Logger is the process log; AccessLog gets one line per request.
	// Nil means discard.
	Logger, AccessLog *slog.Logger
	// Registry receives the sidecar's metrics (and the Go and process
	// collectors); nil means a new registry.
	Registry *prometheus.Registry
	// Tracing overrides the tracing built from Config.Tracing (tests).
	Tracing *Tracing
	// ProxyListener and AdminListener, when set, are used instead of
	// listening on Config.Listen and Config.Admin.Listen (tests).
	ProxyListener, AdminListener net.Listener
	// SetupAdmin, when set, is called before the admin server starts, to
	// add endpoints with AdminServer.Handle.
	SetupAdmin func(*AdminServer, *Sidecar)
	// OnReload, when set, is called after every hot-reload attempt with its
	// result (nil on success); tests wait on it instead of sleeping.
	OnReload func(error)
	// Outbox, when set, is used instead of opening the store that
	// Config.Outbox names (tests); the Server closes it.
	Outbox outbox.Store
}

// Server is a started sidecar: the proxy and admin listeners, the
// reloader, and the drain.
type Server struct {
	Sidecar *Sidecar
	Admin   *AdminServer
	Metrics *metrics.Metrics

	proxySrv, adminSrv *http.Server
	proxyLn, adminLn   net.Listener
	tracing            *Tracing
	logger             *slog.Logger
	listening          atomic.Bool
	stopReload         context.CancelFunc
	outbox             *outboxRunner // nil when the outbox is disabled
	errc               chan error
}

// Start builds the sidecar and starts serving. It returns once both
// listeners accept connections.
func Start(ctx context.Context, opts RunOptions) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv := &Server{Metrics: metrics.New(reg), logger: opts.Logger, errc: make(chan error, 2)}
	cfg := opts.Config

	srv.tracing = opts.Tracing
	if srv.tracing == nil {
		t, err := NewTracing(ctx, cfg.Tracing, opts.Logger)
		if err != nil {
			return nil, err
		}
		srv.tracing = t
	}
	s, err := New(cfg, Deps{Metrics: srv.Metrics, Logger: opts.Logger}, srv.tracing, opts.AccessLog)
	if err != nil {
		srv.shutdownTracing()
		return nil, err
	}
	srv.Sidecar = s
	srv.Metrics.ReloadResult(true, time.Now())

	srv.Admin = NewAdminServer(s, reg, srv.listening.Load)
	if opts.SetupAdmin != nil {
		opts.SetupAdmin(srv.Admin, s)
	}
	if srv.proxyLn, err = listen(opts.ProxyListener, cfg.Listen); err != nil {
		s.Close()
		srv.shutdownTracing()
		return nil, fmt.Errorf("listen: %w", err)
	}
	if srv.adminLn, err = listen(opts.AdminListener, cfg.Admin.Listen); err != nil {
		srv.proxyLn.Close()
		s.Close()
		srv.shutdownTracing()
		return nil, fmt.Errorf("admin.listen: %w", err)
	}
	srv.proxyLn = limitListen(srv.proxyLn, cfg.Server.MaxConnections, srv.Metrics.ConnectionsRefused.Inc)
	// The outbox opens last: its bolt file is locked by one process at a
	// time, so a start that fails on a busy port must not hold it.
	st := opts.Outbox
	if st == nil {
		if st, err = OpenOutbox(ctx, cfg.Outbox); err != nil {
			srv.proxyLn.Close()
			srv.adminLn.Close()
			s.Close()
			srv.shutdownTracing()
			return nil, err
		}
	}
	if st != nil {
		srv.outbox = s.attachOutbox(st, cfg.Outbox)
		h := s.outboxAdmin(st)
		srv.Admin.Handle("/admin/outbox", h)
		srv.Admin.Handle("/admin/outbox/", h)
	}
	srv.proxySrv = newServer(cfg.Server, s.Handler(), opts.Logger)
	srv.adminSrv = &http.Server{Handler: srv.Admin, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 120 * time.Second}
	go srv.serve(srv.proxySrv, srv.proxyLn)
	go srv.serve(srv.adminSrv, srv.adminLn)
	srv.listening.Store(true)

	rctx, cancel := context.WithCancel(context.Background())
	srv.stopReload = cancel
	if opts.Load.Path != "" && cfg.Reload.Enabled {
		r := NewReloader(s, opts.Load, cfg.Reload.Debounce, opts.Logger)
		r.OnResult = opts.OnReload
		if err := r.Watch(); err != nil {
			opts.Logger.Error("config reload disabled", "error", err)
		} else {
			go func() { _ = r.Run(rctx) }()
		}
	}
	opts.Logger.Info("sidecar started", "listen", srv.proxyLn.Addr().String(), "admin", srv.adminLn.Addr().String(), "upstream", cfg.Upstream.URL)
	return srv, nil
}

func listen(ln net.Listener, addr string) (net.Listener, error) {
	if ln != nil {
		return ln, nil
	}
	return net.Listen("tcp", addr)
}

// newServer is the server step (step 1 of chain.go): read-header and read
// timeouts stop slowloris clients, MaxHeaderBytes caps headers (431), and
// the idle timeout is long enough for clients that keep connections open.
func newServer(cfg config.ServerConfig, h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

func (srv *Server) serve(hs *http.Server, ln net.Listener) {
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		srv.errc <- err
	}
}

// ProxyAddr is the proxy listener's address.
func (srv *Server) ProxyAddr() string { return srv.proxyLn.Addr().String() }

// AdminAddr is the admin listener's address.
func (srv *Server) AdminAddr() string { return srv.adminLn.Addr().String() }

// Err reports a listener that failed while serving.
func (srv *Server) Err() <-chan error { return srv.errc }

// Drain shuts the sidecar down gracefully: /readyz turns 503 and keep-alive
// is turned off at once, then after server.drain_delay (so load balancers
// stop sending) the listener closes and in-flight requests get up to
// server.drain_timeout to finish. The admin server stays up until the end
// so /readyz and /metrics remain observable during the drain.
func (srv *Server) Drain() error {
	cfg := srv.Sidecar.Snapshot().Config.Server
	srv.Sidecar.draining.Store(true)
	srv.stopReload()
	srv.proxySrv.SetKeepAlivesEnabled(false)
	srv.logger.Info("draining", "delay", cfg.DrainDelay.String(), "timeout", cfg.DrainTimeout.String())
	if cfg.DrainDelay > 0 {
		time.Sleep(cfg.DrainDelay)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancel()
	err := srv.proxySrv.Shutdown(ctx)
	if err != nil {
		err = fmt.Errorf("proxy: drain: %w", err)
		srv.proxySrv.Close()
	}
	actx, acancel := context.WithTimeout(context.Background(), time.Second)
	defer acancel()
	_ = srv.adminSrv.Shutdown(actx)
	srv.closeOutbox()
	srv.Sidecar.Close()
	srv.shutdownTracing()
	srv.logger.Info("drained", "error", err)
	return err
}

// closeOutbox stops the outbox deliverer and closes its store; queued
// messages stay stored for the next start.
func (srv *Server) closeOutbox() {
	if srv.outbox == nil {
		return
	}
	if err := srv.outbox.close(); err != nil {
		srv.logger.Warn("outbox close", "error", err)
	}
	srv.outbox = nil
}

// shutdownTracing flushes and stops the tracer provider (and its OTLP
// exporter, when configured), waiting at most 2s for a slow collector.
func (srv *Server) shutdownTracing() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.tracing.Shutdown(ctx); err != nil {
		srv.logger.Warn("tracing shutdown", "error", err)
	}
}

// Run starts the sidecar and serves until ctx is done (SIGTERM), then
// drains. It returns nil after a clean drain.
func Run(ctx context.Context, opts RunOptions) error {
	srv, err := Start(ctx, opts)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case err := <-srv.errc:
		srv.logger.Error("listener failed", "error", err)
		_ = srv.Drain()
		return err
	}
	return srv.Drain()
}
