package proxy

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"

	"opscore-sidecar/policy"
	"opscore-sidecar/proxy/proxytest"
)

func TestUpstreamDialErrorsAreDialErrors(t *testing.T) {
	addr := proxytest.RefusingURL(t)[len("http://"):]
	_, err := dialUpstream(&net.Dialer{})(context.Background(), "tcp", addr)
	var de *policy.DialError
	if !errors.As(err, &de) {
		t.Fatalf("dial error %v (%T), want a *policy.DialError", err, err)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("errors.Is(%v, ECONNREFUSED) = false, want the cause visible through the wrapper", err)
	}
	if got := policy.Classify(0, err, nil).Kind; got != policy.AttemptNotReached {
		t.Errorf("Classify kind = %s, want not_reached", got)
	}
}
