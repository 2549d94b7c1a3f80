package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// CheckTarget fails fast when nothing answers at target: it sends GET
// /health with a 3 s timeout and accepts any HTTP response.
func CheckTarget(ctx context.Context, target string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	target = strings.TrimRight(target, "/")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target+"/health", nil)
	if err != nil {
		return fmt.Errorf("loadgen: target %q: %w", target, err)
	}
	client := &http.Client{Transport: newTransport(1)}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		kind, msg := classifyTransport(err)
		return fmt.Errorf("loadgen: target %s is unreachable (%s: %s): %w", target, kind, msg, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return nil
}

// Run drives the configured load until the duration passes, the stop rule
// fires or ctx is cancelled (Ctrl-C), and returns what it measured. An
// interrupted run still returns its Result, marked Interrupted.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// "http://host:8000/" and "http://host:8000" name the same target;
	// paths are appended to it.
	cfg.Target = strings.TrimRight(cfg.Target, "/")
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 60 * time.Second
	}
	if cfg.APIKey == "" {
		cfg.APIKey = "test-api-key"
	}
	start := time.Now()
	cfg.runTag = strconv.FormatInt(start.UnixNano()%1e9, 36)
	rec := NewRecorder(start)
	res := &Result{
		Scenario: cfg.Scenario.ID, Title: cfg.Scenario.Title, Model: "closed", Target: cfg.Target,
		Users: cfg.Scenario.Users, SpawnRate: cfg.Scenario.SpawnRate, UniqueIDs: cfg.UniqueIDs, Started: start,
		Think: cfg.Scenario.ThinkMin.String() + "-" + cfg.Scenario.ThinkMax.String(), Duration: cfg.Scenario.Duration.String(),
	}
	runCtx, cancel := context.WithTimeout(ctx, cfg.Scenario.Duration)
	defer cancel()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // sample users every second for the chart
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			now := time.Now()
			rec.Tick(now)
			if cfg.Progress != nil && int(now.Sub(start).Seconds())%5 == 4 {
				rec.progress(cfg.Progress, now)
			}
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
			}
		}
	}()
	var stopReason string
	if cfg.Scenario.StopRule || cfg.StopRule {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stopReason = watchStopRule(runCtx, rec, cancel)
		}()
	}
	if cfg.Rate > 0 {
		res.Model, res.Rate = "open", cfg.Rate
		runOpen(runCtx, &cfg, rec)
	} else {
		runClosed(runCtx, &cfg, rec)
	}
	cancel()
	wg.Wait()
	res.Elapsed = time.Since(start).Seconds()
	res.Interrupted = errors.Is(ctx.Err(), context.Canceled)
	res.StopReason = stopReason
	rec.fill(res)
	return res, nil
}

// Stop-rule thresholds (docs/loadtest.md, "Stop rule").
const (
	stopWindow      = 30 * time.Second
	stopMeanLatency = 2 * time.Second
	stopFailRatio   = 0.05
)

// watchStopRule checks every 5 s whether the mean latency of critical
// requests or the error rate over the last 30 s crossed the thresholds,
// and cancels the run if so, returning the reason.
func watchStopRule(ctx context.Context, rec *Recorder, cancel context.CancelFunc) string {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ""
		case now := <-t.C:
			mean, ratio, n := rec.window(now, stopWindow)
			if reason := stopRule(mean, ratio, n, int64(rec.users.Load())); reason != "" {
				cancel()
				return reason
			}
		}
	}
}

// stopRule returns why scenario 4 must stop, or "".
func stopRule(critMean time.Duration, failRatio float64, n uint64, users int64) string {
	switch {
	case n == 0:
		return ""
	case critMean > stopMeanLatency:
		return fmt.Sprintf("mean latency of critical requests %v > %v at %d users", critMean.Round(time.Millisecond), stopMeanLatency, users)
	case failRatio > stopFailRatio:
		return fmt.Sprintf("error rate %.1f%% > %.0f%% at %d users", 100*failRatio, 100*stopFailRatio, users)
	}
	return ""
}
