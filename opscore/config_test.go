package opscore

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(c Config) string
		wantErr []string
	}{
		{name: "defaults", check: func(c Config) string {
			if c.Listen != ":8000" || c.StorageType != "memory" || c.Redis.Host != "localhost" || c.Redis.Port != 6379 ||
				c.Redis.Timeout != time.Second || c.IdleTimeout != 120*time.Second || c.APIKey != "" {
				return "defaults differ"
			}
			return ""
		}},
		{name: "python inmemory is memory", env: map[string]string{"OPSCORE_STORAGE_TYPE": "inmemory"},
			check: func(c Config) string { return want(c.StorageType, "memory") }},
		{name: "redis by env", env: map[string]string{"OPSCORE_STORAGE_TYPE": "Redis", "REDIS_HOST": "r", "REDIS_PORT": "6380"},
			check: func(c Config) string {
				return want(c.StorageType+" "+c.Redis.Host+" "+strconv.Itoa(c.Redis.Port), "redis r 6380")
			}},
		{name: "REDIS_URL alone selects redis", env: map[string]string{"REDIS_URL": "redis://x:1/0"},
			check: func(c Config) string { return want(c.StorageType, "redis") }},
		{name: "flags override env", args: []string{"--listen", ":9", "--idle-timeout", "5s", "--storage", "memory"},
			env: map[string]string{"OPSCORE_LISTEN": ":7", "OPSCORE_IDLE_TIMEOUT": "60s", "OPSCORE_STORAGE_TYPE": "redis"},
			check: func(c Config) string {
				return want(c.Listen+" "+c.IdleTimeout.String()+" "+c.StorageType, ":9 5s memory")
			}},
		{name: "env timeouts", env: map[string]string{"OPSCORE_REDIS_TIMEOUT": "250ms", "OPSCORE_API_KEY": "k"},
			check: func(c Config) string { return want(c.Redis.Timeout.String()+" "+c.APIKey, "250ms k") }},
		{name: "every error at once",
			env:     map[string]string{"OPSCORE_STORAGE_TYPE": "etcd", "REDIS_PORT": "x", "OPSCORE_IDLE_TIMEOUT": "5", "LOG_LEVEL": "loud"},
			wantErr: []string{"OPSCORE_STORAGE_TYPE", "REDIS_PORT", "OPSCORE_IDLE_TIMEOUT", "LOG_LEVEL"}},
		{name: "unknown flag", args: []string{"--nope"}, wantErr: []string{"flags"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := LoadConfig(tt.args, func(k string) string { return tt.env[k] })
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("got nil error, want one naming %v", tt.wantErr)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("got error %q, want it to name %s", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			if msg := tt.check(c); msg != "" {
				t.Fatalf("%s (config %+v)", msg, c)
			}
		})
	}
}

func want(got, w string) string {
	if got != w {
		return "got " + got + ", want " + w
	}
	return ""
}
