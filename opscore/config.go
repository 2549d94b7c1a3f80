package opscore

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Config is the configuration of the opscore binary. Each field names its
// env variable and flag; a flag overrides the env, the env overrides the
// default.
type Config struct {
	// Listen is the HTTP listen address (OPSCORE_LISTEN, --listen).
	// Default ":8000".
	Listen string
	// StorageType is "memory" or "redis" (OPSCORE_STORAGE_TYPE, --storage);
	// the original's "inmemory" means memory. Default memory, or redis when
	// REDIS_URL is set and the type is not.
	StorageType string
	// Redis says how to reach Redis: REDIS_URL (--redis-url, wins),
	// REDIS_HOST (--redis-host, default localhost), REDIS_PORT
	// (--redis-port, default 6379), OPSCORE_REDIS_TIMEOUT
	// (--redis-timeout, default 1s) and OPSCORE_REDIS_POOL_SIZE
	// (--redis-pool-size, default 256).
	Redis RedisConfig
	// APIKey is the bearer key (OPSCORE_API_KEY; env only, so it never
	// shows in a process list). Empty means DefaultAPIKey with a warning.
	APIKey string
	// LogLevel is DEBUG, INFO, WARNING or ERROR, any case (LOG_LEVEL,
	// --log-level). Default INFO.
	LogLevel string
	// WorkflowFile is a JSON file of workflow definitions to preload
	// (OPSCORE_WORKFLOW_FILE, --workflow-file). Empty means the built-in
	// sample_workflow_id.
	WorkflowFile string
	// IdleTimeout closes keep-alive connections idle this long
	// (OPSCORE_IDLE_TIMEOUT, --idle-timeout). Default 120s; 5s reproduces
	// uvicorn's keep-alive close race (docs/loadtest.md, "The keep-alive
	// race").
	IdleTimeout time.Duration
	// ShutdownTimeout is how long SIGTERM waits for in-flight requests
	// (OPSCORE_SHUTDOWN_TIMEOUT, --shutdown-timeout). Default 20s.
	ShutdownTimeout time.Duration
}

// DefaultConfig returns the defaults of every setting.
func DefaultConfig() Config {
	return Config{
		Listen:          ":8000",
		Redis:           RedisConfig{Host: "localhost", Port: 6379, Timeout: DefaultRedisTimeout, PoolSize: 256},
		LogLevel:        "INFO",
		IdleTimeout:     120 * time.Second,
		ShutdownTimeout: 20 * time.Second,
	}
}

// LoadConfig builds a Config from defaults, then the environment (read
// through getenv), then the flags in args. It reports every invalid value
// at once.
func LoadConfig(args []string, getenv func(string) string) (Config, error) {
	c := DefaultConfig()
	var errs []error
	envStr := func(dst *string, key string) {
		if v := getenv(key); v != "" {
			*dst = v
		}
	}
	envDur := func(dst *time.Duration, key string) {
		if v := getenv(key); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: not a duration (like 1s or 250ms): %q", key, v))
				return
			}
			*dst = d
		}
	}
	envInt := func(dst *int, key string) {
		if v := getenv(key); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: not an integer: %q", key, v))
				return
			}
			*dst = n
		}
	}
	envStr(&c.Listen, "OPSCORE_LISTEN")
	envStr(&c.StorageType, "OPSCORE_STORAGE_TYPE")
	envStr(&c.Redis.URL, "REDIS_URL")
	envStr(&c.Redis.Host, "REDIS_HOST")
	envInt(&c.Redis.Port, "REDIS_PORT")
	envDur(&c.Redis.Timeout, "OPSCORE_REDIS_TIMEOUT")
	envInt(&c.Redis.PoolSize, "OPSCORE_REDIS_POOL_SIZE")
	envStr(&c.APIKey, "OPSCORE_API_KEY")
	envStr(&c.LogLevel, "LOG_LEVEL")
	envStr(&c.WorkflowFile, "OPSCORE_WORKFLOW_FILE")
	envDur(&c.IdleTimeout, "OPSCORE_IDLE_TIMEOUT")
	envDur(&c.ShutdownTimeout, "OPSCORE_SHUTDOWN_TIMEOUT")

	fs := flag.NewFlagSet("opscore", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.Listen, "listen", c.Listen, "HTTP listen address (OPSCORE_LISTEN)")
	fs.StringVar(&c.StorageType, "storage", c.StorageType, "memory or redis (OPSCORE_STORAGE_TYPE)")
	fs.StringVar(&c.Redis.URL, "redis-url", c.Redis.URL, "Redis URL, wins over host/port (REDIS_URL)")
	fs.StringVar(&c.Redis.Host, "redis-host", c.Redis.Host, "Redis host (REDIS_HOST)")
	fs.IntVar(&c.Redis.Port, "redis-port", c.Redis.Port, "Redis port (REDIS_PORT)")
	fs.DurationVar(&c.Redis.Timeout, "redis-timeout", c.Redis.Timeout, "timeout of each Redis operation (OPSCORE_REDIS_TIMEOUT)")
	fs.IntVar(&c.Redis.PoolSize, "redis-pool-size", c.Redis.PoolSize, "Redis connection pool size (OPSCORE_REDIS_POOL_SIZE)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "DEBUG, INFO, WARNING or ERROR (LOG_LEVEL)")
	fs.StringVar(&c.WorkflowFile, "workflow-file", c.WorkflowFile, "JSON workflow definitions to preload (OPSCORE_WORKFLOW_FILE)")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", c.IdleTimeout, "keep-alive idle timeout (OPSCORE_IDLE_TIMEOUT)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "grace for in-flight requests on SIGTERM (OPSCORE_SHUTDOWN_TIMEOUT)")
	if err := fs.Parse(args); err != nil {
		errs = append(errs, fmt.Errorf("flags: %w", err))
	} else if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("flags: unexpected argument %q", fs.Arg(0)))
	}

	if c.StorageType == "" && c.Redis.URL != "" {
		c.StorageType = "redis"
	}
	switch strings.ToLower(c.StorageType) {
	case "", "memory", "inmemory":
		c.StorageType = "memory"
	case "redis":
		c.StorageType = "redis"
	default:
		errs = append(errs, fmt.Errorf("OPSCORE_STORAGE_TYPE: must be memory or redis, got %q", c.StorageType))
	}
	if _, ok := parseLevel(c.LogLevel); !ok {
		errs = append(errs, fmt.Errorf("LOG_LEVEL: must be DEBUG, INFO, WARNING or ERROR, got %q", c.LogLevel))
	}
	if c.Redis.Port < 1 || c.Redis.Port > 65535 {
		errs = append(errs, fmt.Errorf("REDIS_PORT: must be 1..65535, got %d", c.Redis.Port))
	}
	if c.Redis.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("OPSCORE_REDIS_TIMEOUT: must be > 0, got %v", c.Redis.Timeout))
	}
	if c.Redis.PoolSize < 1 {
		errs = append(errs, fmt.Errorf("OPSCORE_REDIS_POOL_SIZE: must be >= 1, got %d", c.Redis.PoolSize))
	}
	if c.IdleTimeout <= 0 {
		errs = append(errs, fmt.Errorf("OPSCORE_IDLE_TIMEOUT: must be > 0, got %v", c.IdleTimeout))
	}
	if c.ShutdownTimeout < 0 {
		errs = append(errs, fmt.Errorf("OPSCORE_SHUTDOWN_TIMEOUT: must be >= 0, got %v", c.ShutdownTimeout))
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("opscore: invalid configuration: %w", errors.Join(errs...))
	}
	return c, nil
}

// parseLevel maps the Python logging level names to slog levels.
func parseLevel(s string) (slog.Level, bool) {
	switch strings.ToUpper(s) {
	case "DEBUG":
		return slog.LevelDebug, true
	case "INFO", "":
		return slog.LevelInfo, true
	case "WARN", "WARNING":
		return slog.LevelWarn, true
	case "ERROR", "CRITICAL":
		return slog.LevelError, true
	}
	return slog.LevelInfo, false
}

// NewLogger returns a JSON slog logger at the given level (see LogLevel).
func NewLogger(w io.Writer, level string) *slog.Logger {
	l, _ := parseLevel(level)
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// OpenStore returns the configured store. For Redis it builds the client
// but does not contact Redis: the service starts even when Redis is down.
func (c Config) OpenStore() (Store, error) {
	if c.StorageType != "redis" {
		return NewMemoryStore(), nil
	}
	client, err := NewRedisClient(c.Redis)
	if err != nil {
		return nil, err
	}
	return NewRedisStore(client, WithOpTimeout(c.Redis.timeout())), nil
}
