package config

import (
	"maps"
	"net/url"
)

// Redacted returns a copy of c safe to show: credentials in URLs are
// replaced. The config holds no secrets itself (webhook secrets and API
// keys are read from the environment or files it names), so only URLs can
// leak one.
func (c *Config) Redacted() *Config {
	out := *c
	out.Routes = maps.Clone(c.Routes)
	out.Upstream.URL = redactURL(c.Upstream.URL)
	out.Tracing.OTLPEndpoint = redactURL(c.Tracing.OTLPEndpoint)
	out.Outbox.RedisURL = redactURL(c.Outbox.RedisURL)
	return &out
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}
