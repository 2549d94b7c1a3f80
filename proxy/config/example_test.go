package config_test

import (
	"fmt"

	"opscore-sidecar/proxy/config"
)

// A partial file is merged with the defaults; every error names its key.
func ExampleLoadBytes() {
	cfg, err := config.LoadBytes([]byte("routes:\n  notify:\n    retry:\n      attempts: 2\n"), nil)
	fmt.Println(cfg.Routes["notify"].Retry.Attempts, cfg.Routes["state_get"].Retry.Attempts, err)

	_, err = config.LoadBytes([]byte("routes:\n  notify:\n    retry:\n      attempts: 0\n"), nil)
	fmt.Println(err)
	// Output:
	// 2 4 <nil>
	// routes.notify.retry.attempts: must be between 1 and 10, got 0
}
