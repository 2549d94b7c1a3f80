package proxy

import (
	"context"
	"net"

	"opscore-sidecar/policy"
)

// dialUpstream returns the upstream transport's dial function: every dial
// error comes back wrapped in *policy.DialError, which tells the retry
// policy that the request never reached the upstream and may be sent again
// on any route (the way Caddy decides retry safety). The wrapper unwraps, so errors.Is and
// errors.As still see the *net.OpError and its syscall error.
func dialUpstream(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, &policy.DialError{Err: err}
		}
		return c, nil
	}
}
