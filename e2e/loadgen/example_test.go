package loadgen_test

import (
	"fmt"
	"syscall"
	"time"

	"opscore-sidecar/e2e/loadgen"
)

func ExampleHistogram() {
	h := loadgen.NewHistogram(7)
	for us := uint64(1); us <= 1000; us++ {
		h.Record(us)
	}
	// Percentiles are reported as their bucket's upper bound: 500 lies in
	// the bucket [500, 501] (within 0.8 %), 991 in [990, 991].
	fmt.Println(h.Percentile(50), h.Percentile(99), h.Max())
	// Output: 501 991 1000
}

func ExampleClassify() {
	f := loadgen.Classify(loadgen.NameNotify, true, 0, fmt.Errorf("read: %w", syscall.ECONNRESET))
	fmt.Println(f.Kind, f.Message)
	f = loadgen.Classify(loadgen.NameState, false, 500, nil)
	fmt.Println(f.Kind, f.Message)
	// Output:
	// reset CatchResponseError('Failed to register agent: 0')
	// http_5xx HTTPError('500 Server Error: Internal Server Error for url: /v1/opscore/agent/[id]/state')
}

func ExampleSign() {
	ts, sig := loadgen.Sign("super-secret-webhook-key-123", []byte(`{"event_type":"REGISTER"}`), time.Unix(1745287627, 0))
	fmt.Println("X-AgentKit-Timestamp:", ts)
	fmt.Println("X-AgentKit-Signature:", sig)
	// Output:
	// X-AgentKit-Timestamp: 1745287627
	// X-AgentKit-Signature: aab198c5a776751c345dca05180e84554c86f0eee1a68c3e3ee42e5054289a60
}
