package policy

import "testing"

func TestClientIP(t *testing.T) {
	tp, err := ParseTrustedProxies([]string{"10.0.0.0/8", "192.168.1.1", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		tp     TrustedProxies
		remote string
		xff    []string
		want   string
	}{
		{"no trusted proxies ignores the header", TrustedProxies{}, "203.0.113.7:5555", []string{"1.2.3.4"}, "203.0.113.7"},
		{"untrusted peer ignores the header", tp, "203.0.113.7:5555", []string{"1.2.3.4"}, "203.0.113.7"},
		{"trusted peer, one hop", tp, "10.1.2.3:80", []string{"198.51.100.9"}, "198.51.100.9"},
		{"spoofed left entries are skipped", tp, "10.1.2.3:80", []string{"6.6.6.6, 198.51.100.9, 10.9.9.9"}, "198.51.100.9"},
		{"several field lines", tp, "192.168.1.1:80", []string{"6.6.6.6", "198.51.100.9", "10.0.0.1"}, "198.51.100.9"},
		{"all trusted gives the leftmost", tp, "10.1.2.3:80", []string{"10.0.0.5, 10.0.0.6"}, "10.0.0.5"},
		{"garbage stops at the last trusted hop", tp, "10.1.2.3:80", []string{"not-an-ip, 10.0.0.6"}, "10.0.0.6"},
		{"trusted peer, no header", tp, "10.1.2.3:80", nil, "10.1.2.3"},
		{"IPv6 peer", tp, "[fd00::1]:443", []string{"2001:db8::5"}, "2001:db8::5"},
		{"IPv6 untrusted peer", tp, "[2001:db8::1]:443", nil, "2001:db8::1"},
		{"bare host", tp, "203.0.113.7", nil, "203.0.113.7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.tp.ClientIP(tt.remote, tt.xff); got != tt.want {
				t.Errorf("ClientIP(%q, %q): got %q, want %q", tt.remote, tt.xff, got, tt.want)
			}
		})
	}
	if _, err := ParseTrustedProxies([]string{"10.0.0.0/33"}); err == nil {
		t.Error("bad CIDR: got nil error, want one")
	}
}

func TestParseKeySource(t *testing.T) {
	tests := []struct {
		in      string
		want    KeySource
		wantErr bool
	}{
		{"", KeySource{}, false},
		{"agent_id", KeySource{Kind: KeyAgentID}, false},
		{"client_ip", KeySource{Kind: KeyClientIP}, false},
		{"header:x-tenant-id", KeySource{Kind: KeyHeader, Header: "X-Tenant-Id"}, false},
		{"header:", KeySource{}, true},
		{"cookie:x", KeySource{}, true},
	}
	for _, tt := range tests {
		got, err := ParseKeySource(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseKeySource(%q): got %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
