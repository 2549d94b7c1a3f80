package proxy

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"opscore-sidecar/policy"
	"opscore-sidecar/proxy/config"
)

// Reloader hot-reloads the config file: on a change it parses, validates,
// builds and swaps in a new snapshot (Sidecar.Apply). An invalid file is
// logged and counted (config_reloads_total{result="failure"}) and the last
// good config keeps serving.
//
// It watches the file's DIRECTORY, not the file: editors save by writing a
// temporary file and renaming it over the original, and Kubernetes updates
// a mounted ConfigMap by swapping a "..data" symlink; a watch on the file
// itself would be lost after the first such change. Every event in the
// directory restarts a debounce timer; when it fires, the file is read and
// reloaded only if its content changed since the last attempt.
type Reloader struct {
	sidecar  *Sidecar
	opts     config.LoadOptions
	debounce time.Duration
	logger   *slog.Logger

	watcher  *fsnotify.Watcher
	mu       sync.Mutex
	lastHash [sha256.Size]byte
	// OnResult, when set before Run, is called after every reload attempt
	// with its result (nil on success). Tests wait on it instead of sleeping.
	OnResult func(error)
}

// NewReloader returns a reloader of opts.Path for s. The content of the
// file as loaded at start-up is remembered, so the first event reloads
// only if the file changed since.
func NewReloader(s *Sidecar, opts config.LoadOptions, debounce time.Duration, logger *slog.Logger) *Reloader {
	r := &Reloader{sidecar: s, opts: opts, debounce: debounce, logger: logger}
	if b, err := os.ReadFile(opts.Path); err == nil {
		r.lastHash = sha256.Sum256(b)
	}
	return r
}

// Watch starts watching the file's directory; changes made after it
// returns are seen by Run.
func (r *Reloader) Watch() error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("proxy: reload: %w", err)
	}
	dir := filepath.Dir(r.opts.Path)
	if err := w.Add(dir); err != nil {
		w.Close()
		return fmt.Errorf("proxy: reload: watch %s: %w", dir, err)
	}
	r.watcher = w
	return nil
}

// Run handles the watch's events until ctx is done, calling Watch first
// if it was not called.
func (r *Reloader) Run(ctx context.Context) error {
	if r.watcher == nil {
		if err := r.Watch(); err != nil {
			return err
		}
	}
	w := r.watcher
	defer w.Close()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			timer.Reset(r.debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			r.logger.Warn("config watch error", "error", err)
		case <-timer.C:
			r.Reload()
		}
	}
}

// Reload reloads the file now if its content changed since the last
// attempt, and reports the attempt's result (nil when nothing changed).
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, err := os.ReadFile(r.opts.Path)
	if err == nil {
		h := sha256.Sum256(b)
		if h == r.lastHash {
			return nil
		}
		r.lastHash = h
		err = r.apply(b)
	}
	m := r.sidecar.deps.Metrics
	m.ReloadResult(err == nil, r.sidecar.deps.now())
	if err != nil {
		r.logger.Error("config reload rejected; keeping the last good config", "path", r.opts.Path, "error", err)
	} else {
		r.logger.Info("config reloaded", "path", r.opts.Path)
	}
	if r.OnResult != nil {
		r.OnResult(err)
	}
	return err
}

// apply loads doc (an empty document is refused: see ErrEmptyConfig) and
// swaps it in, then warns of every authentication check it weakened.
func (r *Reloader) apply(doc []byte) error {
	cfg, err := config.LoadBytes(doc, r.opts.Overrides)
	if err != nil {
		return err
	}
	var old *config.Config
	if snap := r.sidecar.snap.Load(); snap != nil {
		old = snap.Config
	}
	if err := r.sidecar.Apply(cfg); err != nil {
		return err
	}
	for _, w := range authWeakenings(old, cfg) {
		r.logger.Warn("config reload weakens authentication", "path", r.opts.Path,
			"route", w.route, "check", w.check, "from", w.from, "to", w.to)
	}
	return nil
}

// authWeakening is one route's auth check made weaker by a reload.
type authWeakening struct {
	route, check, from, to string
}

// authStrength orders the auth modes: off < optional < required.
var authStrength = map[string]int{policy.AuthOff: 0, policy.AuthOptional: 1, policy.AuthRequired: 2}

// authWeakenings lists, in route order, every webhook_auth or api_key
// mode that is weaker in next than in prev (required → optional or off,
// optional → off).
func authWeakenings(prev, next *config.Config) []authWeakening {
	if prev == nil || next == nil {
		return nil
	}
	var out []authWeakening
	for _, name := range config.RouteNames {
		p, n := prev.Routes[name], next.Routes[name]
		if authStrength[n.WebhookAuth.Mode] < authStrength[p.WebhookAuth.Mode] {
			out = append(out, authWeakening{name, "webhook_auth", p.WebhookAuth.Mode, n.WebhookAuth.Mode})
		}
		if authStrength[n.APIKey.Mode] < authStrength[p.APIKey.Mode] {
			out = append(out, authWeakening{name, "api_key", p.APIKey.Mode, n.APIKey.Mode})
		}
	}
	return out
}
