package opscore

import "testing"

func TestParseHTTPURL(t *testing.T) {
	tests := []struct{ in, want, reason string }{
		{"http://a:8080", "http://a:8080/", ""},
		{"HTTP://Host.Example:80/Path?q=1", "http://host.example/Path?q=1", ""},
		{"https://h:443", "https://h/", ""},
		{"https://h:8443/x", "https://h:8443/x", ""},
		{"http://[::1]:9000", "http://[::1]:9000/", ""},
		{"abc", "", "relative URL without a base"},
		{"ftp://h/", "", "scheme"},
		{"http://", "", "empty host"},
		{"", "", "input is empty"},
	}
	for _, tt := range tests {
		got, reason := parseHTTPURL(tt.in)
		if got != tt.want || reason != tt.reason {
			t.Errorf("parseHTTPURL(%q): got %q, %q; want %q, %q", tt.in, got, reason, tt.want, tt.reason)
		}
	}
}
