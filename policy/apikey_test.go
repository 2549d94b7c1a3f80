package policy

import "testing"

func TestAPIKeyCheck(t *testing.T) {
	c, err := NewAPIKeyChecker(APIKeyConfig{Mode: AuthRequired, KeyEnv: "OPSCORE_API_KEY"}, func(string) string { return "test-api-key" })
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, header string
		want         AuthReason
	}{
		{"right key", "Bearer test-api-key", AuthReasonNone},
		{"scheme in any case", "bEaReR test-api-key", AuthReasonNone},
		{"absent", "", AuthReasonInvalidKey},
		{"wrong key", "Bearer test-api-kez", AuthReasonInvalidKey},
		{"key prefix", "Bearer test-api", AuthReasonInvalidKey},
		{"key longer", "Bearer test-api-key2", AuthReasonInvalidKey},
		{"two spaces, as Ops-Core refuses", "Bearer  test-api-key", AuthReasonInvalidKey},
		{"wrong scheme", "Basic test-api-key", AuthReasonInvalidKey},
		{"no token", "Bearer", AuthReasonInvalidKey},
		{"empty token", "Bearer ", AuthReasonInvalidKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := c.Check(tt.header)
			if got.Reason != tt.want || got.Allowed != (tt.want == AuthReasonNone) {
				t.Errorf("Check(%q): got %+v, want reason %q", tt.header, got, tt.want)
			}
		})
	}
	off, err := NewAPIKeyChecker(DefaultAPIKey(), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if got := off.Check(""); !got.Allowed {
		t.Errorf("off: got %+v, want allowed", got)
	}
	if _, err := NewAPIKeyChecker(APIKeyConfig{Mode: AuthRequired, KeyEnv: "K"}, func(string) string { return "" }); err == nil {
		t.Error("required with no key: got nil error, want one")
	}
}
