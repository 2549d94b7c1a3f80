package opscore

import (
	"context"
	"os"
	"runtime"
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

// testingProcs is GOMAXPROCS, for sizing RunParallel to a client count.
func testingProcs() int { return runtime.GOMAXPROCS(0) }
