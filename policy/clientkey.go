package policy

import (
	"fmt"
	"net/netip"
	"net/textproto"
	"strings"
)

// KeyKind is where a route's per-key bucket takes its key from.
type KeyKind uint8

// The key kinds.
const (
	// KeyNone means the route has no per-key buckets.
	KeyNone KeyKind = iota
	// KeyAgentID is the {agent_id} path parameter.
	KeyAgentID
	// KeyClientIP is the client's address (see TrustedProxies.ClientIP).
	KeyClientIP
	// KeyHeader is the value of a request header.
	KeyHeader
)

// KeySource is a parsed rate_limit.key: "agent_id", "client_ip" or
// "header:<Name>".
type KeySource struct {
	// Kind is where the key comes from.
	Kind KeyKind
	// Header is the header name for KeyHeader, in canonical form.
	Header string
}

// ParseKeySource parses a rate_limit.key value; "" is KeyNone.
func ParseKeySource(s string) (KeySource, error) {
	switch {
	case s == "":
		return KeySource{}, nil
	case s == "agent_id":
		return KeySource{Kind: KeyAgentID}, nil
	case s == "client_ip":
		return KeySource{Kind: KeyClientIP}, nil
	case strings.HasPrefix(s, "header:") && len(s) > len("header:"):
		return KeySource{Kind: KeyHeader, Header: textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(s[len("header:"):]))}, nil
	}
	return KeySource{}, fmt.Errorf("policy: rate limit key must be %s, got %q", keySourceForms, s)
}

// keySourceForms lists the rate_limit.key values ParseKeySource accepts,
// for error messages.
const keySourceForms = `"", "agent_id", "client_ip" or "header:<Name>"`

// TrustedProxies is the set of networks whose X-Forwarded-For is believed.
type TrustedProxies struct {
	prefixes []netip.Prefix
}

// ParseTrustedProxies parses CIDRs (a bare address is a /32 or /128).
func ParseTrustedProxies(cidrs []string) (TrustedProxies, error) {
	var tp TrustedProxies
	for i, c := range cidrs {
		c = strings.TrimSpace(c)
		p, err := netip.ParsePrefix(c)
		if err != nil {
			a, aerr := netip.ParseAddr(c)
			if aerr != nil {
				return TrustedProxies{}, fmt.Errorf("admission.trusted_proxies[%d]: not a CIDR or address: %q", i, c)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		tp.prefixes = append(tp.prefixes, p.Masked())
	}
	return tp, nil
}

// Trusts reports whether addr is in a trusted network.
func (tp TrustedProxies) Trusts(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range tp.prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// ClientIP returns the client address of a request whose peer is
// remoteAddr ("host:port" or a bare host) and whose X-Forwarded-For field
// lines are xff. The forwarded chain is believed only while its hops are
// trusted: walking from the peer backwards, the first untrusted address is
// the client. With no trusted proxies, or an untrusted peer, the peer
// itself is the client, so a client cannot choose its own key. An
// unparsable forwarded entry stops the walk at the last trusted hop.
func (tp TrustedProxies) ClientIP(remoteAddr string, xff []string) string {
	peer := hostOf(remoteAddr)
	addr, err := netip.ParseAddr(peer)
	if err != nil || len(tp.prefixes) == 0 || !tp.Trusts(addr) {
		return peer
	}
	client := peer
	for i := len(xff) - 1; i >= 0; i-- {
		line := xff[i]
		for line != "" {
			var hop string
			if j := strings.LastIndexByte(line, ','); j >= 0 {
				hop, line = strings.TrimSpace(line[j+1:]), line[:j]
			} else {
				hop, line = strings.TrimSpace(line), ""
			}
			a, err := netip.ParseAddr(hop)
			if err != nil {
				return client
			}
			client = hop
			if !tp.Trusts(a) {
				return client
			}
		}
	}
	return client
}

// hostOf strips the port (and IPv6 brackets) from a "host:port" address.
func hostOf(remoteAddr string) string {
	if _, err := netip.ParseAddrPort(remoteAddr); err == nil {
		i := strings.LastIndexByte(remoteAddr, ':')
		return strings.Trim(remoteAddr[:i], "[]")
	}
	return remoteAddr
}
