package opscore

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// RedisConfig says how to reach Redis. URL wins over Host and Port.
type RedisConfig struct {
	// URL is a redis:// or rediss:// URL (env REDIS_URL). Empty means use
	// Host and Port.
	URL string
	// Host is the Redis host (env REDIS_HOST). Empty means "localhost".
	Host string
	// Port is the Redis port (env REDIS_PORT). Zero means 6379.
	Port int
	// Timeout bounds dialling, each read and write, waiting for a pooled
	// connection, and every store operation as a whole (env
	// OPSCORE_REDIS_TIMEOUT). Zero means 1s.
	Timeout time.Duration
	// PoolSize is the maximum number of connections (env
	// OPSCORE_REDIS_POOL_SIZE). Zero means 256, enough for 64+ concurrent
	// clients with headroom.
	PoolSize int
}

// DefaultRedisTimeout is the per-operation Redis timeout when none is set.
const DefaultRedisTimeout = time.Second

func (c RedisConfig) timeout() time.Duration {
	if c.Timeout <= 0 {
		return DefaultRedisTimeout
	}
	return c.Timeout
}

// NewRedisClient builds a go-redis client with short timeouts, a pool sized
// for the load and at most one quick retry, so a stalled Redis turns into
// 503s within about one Timeout instead of hanging requests. It does not
// contact Redis.
func NewRedisClient(c RedisConfig) (redis.UniversalClient, error) {
	var opt *redis.Options
	if c.URL != "" {
		o, err := redis.ParseURL(c.URL)
		if err != nil {
			return nil, fmt.Errorf("opscore: REDIS_URL: %w", err)
		}
		opt = o
	} else {
		host, port := c.Host, c.Port
		if host == "" {
			host = DefaultConfig().Redis.Host
		}
		if port == 0 {
			port = DefaultConfig().Redis.Port
		}
		if port < 0 || port > 65535 {
			return nil, fmt.Errorf("opscore: REDIS_PORT: must be 1..65535, got %d", port)
		}
		opt = &redis.Options{Addr: net.JoinHostPort(host, strconv.Itoa(port))}
	}
	t := c.timeout()
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout, opt.PoolTimeout = t, t, t, t
	opt.ContextTimeoutEnabled = true
	opt.DialerRetries = 1
	opt.MaxRetries = 1
	opt.MinRetryBackoff, opt.MaxRetryBackoff = 5*time.Millisecond, 50*time.Millisecond
	opt.PoolSize = c.PoolSize
	if opt.PoolSize <= 0 {
		opt.PoolSize = DefaultConfig().Redis.PoolSize
	}
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return redis.NewClient(opt), nil
}

// RedisLogger adapts slog to go-redis's internal logger, at debug level:
// the client logs every failed dial, and the service already logs each
// failed request once at warning level. Install it with redis.SetLogger
// (process-wide, so only main should do it).
type RedisLogger struct {
	// Logger receives the messages.
	Logger *slog.Logger
}

// Printf implements go-redis's internal.Logging.
func (l RedisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.Logger.DebugContext(ctx, fmt.Sprintf(format, v...), slog.String("component", "go-redis"))
}
