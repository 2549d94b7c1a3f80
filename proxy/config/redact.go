package config

import (
	"maps"
	"net/url"
	"reflect"
	"time"
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
	return &out
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}

// Tree returns c as nested maps keyed by the YAML keys, with durations as
// Go duration strings ("250ms"): the shape of the config file, used by
// /admin/config and the effective-config golden file.
func (c *Config) Tree() map[string]any {
	return toTree(reflect.ValueOf(c).Elem()).(map[string]any)
}

func toTree(v reflect.Value) any {
	switch {
	case v.Type() == durationType:
		return time.Duration(v.Int()).String()
	case v.Kind() == reflect.Struct:
		m := map[string]any{}
		for i := 0; i < v.NumField(); i++ {
			tag := configKey(v.Type().Field(i))
			if tag != "" && tag != "-" {
				m[tag] = toTree(v.Field(i))
			}
		}
		return m
	case v.Kind() == reflect.Map:
		m := map[string]any{}
		for _, k := range v.MapKeys() {
			m[k.String()] = toTree(v.MapIndex(k))
		}
		return m
	case v.Kind() == reflect.Slice:
		s := make([]any, v.Len())
		for i := range s {
			s[i] = toTree(v.Index(i))
		}
		return s
	}
	return v.Interface()
}
