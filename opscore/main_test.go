package opscore

import (
	"context"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"
)

type discardRedisLog struct{}

func (discardRedisLog) Printf(context.Context, string, ...any) {}

// TestMain silences go-redis's process-wide logger: the fault tests make it
// print a line for every refused dial.
func TestMain(m *testing.M) {
	redis.SetLogger(discardRedisLog{})
	os.Exit(m.Run())
}
