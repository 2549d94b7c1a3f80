package loadgen

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"
)

// Config is one run: a scenario (after overrides) and how to drive it.
type Config struct {
	// Scenario is the scenario to run, with users, spawn rate and duration
	// already overridden as asked.
	Scenario Scenario
	// Target is the base URL of Ops-Core or the sidecar.
	Target string
	// APIKey is the Bearer key (the locustfiles' OPSCORE_API_KEY).
	APIKey string
	// WebhookSecret, when set, signs registrations as AgentKit does.
	WebhookSecret string
	// UniqueIDs replaces the random 5-digit (or 4-digit) agent ids, which
	// collide, with run-unique ones.
	UniqueIDs bool
	// Rate, when > 0, selects the open model: this many requests per
	// second, latency measured from each request's scheduled send time.
	Rate float64
	// Connections is the open model's number of concurrent senders and
	// keep-alive connections.
	Connections int
	// RequestTimeout bounds every request; 0 means 60 s.
	RequestTimeout time.Duration
	// StopRule forces the scenario 4 stop rule on (it is on for scenario 4).
	StopRule bool
	// Progress, when set, receives a one-line summary every 5 s.
	Progress io.Writer
	// Observe, when set, is called after every recorded request with what
	// was sent and what came back, for tests that need more than the
	// aggregated Result (per-request times, statuses and headers). It is
	// called from many goroutines at once and must not block for long.
	Observe func(Exchange)

	runTag string
}

// Limits on the overrides; outside them a run is refused.
const (
	MaxUsers       = 100000
	MaxSpawnRate   = 10000.0
	MinDuration    = time.Second
	MaxDuration    = 24 * time.Hour
	MaxRate        = 1e6
	MaxConnections = 100000
)

// Validate reports every problem with the config at once.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	s := &c.Scenario
	if u, err := url.Parse(c.Target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add("--target: must be an http(s) URL with a host, got %q", c.Target)
	}
	if s.Users < 1 || s.Users > MaxUsers {
		add("--users: must be between 1 and %d, got %d", MaxUsers, s.Users)
	}
	if s.SpawnRate <= 0 || s.SpawnRate > MaxSpawnRate {
		add("--spawn-rate: must be > 0 and <= %v, got %v", MaxSpawnRate, s.SpawnRate)
	}
	if s.Duration < MinDuration || s.Duration > MaxDuration {
		add("--duration: must be between %v and %v, got %v", MinDuration, MaxDuration, s.Duration)
	}
	if s.ThinkMin < 0 || s.ThinkMax < s.ThinkMin {
		add("think time: need 0 <= min <= max, got %v..%v", s.ThinkMin, s.ThinkMax)
	}
	if c.Rate < 0 || c.Rate > MaxRate {
		add("--rate: must be between 0 (closed model) and %v, got %v", MaxRate, c.Rate)
	}
	if c.Rate > 0 && (c.Connections < 1 || c.Connections > MaxConnections) {
		add("--connections: must be between 1 and %d, got %d", MaxConnections, c.Connections)
	}
	if c.RequestTimeout < 0 {
		add("--request-timeout: must be >= 0, got %v", c.RequestTimeout)
	}
	if len(s.Tasks) == 0 || s.totalWeight() <= 0 {
		add("scenario %d: has no weighted tasks", s.ID)
	}
	return errors.Join(errs...)
}
