package policy

import (
	"strings"
	"testing"
	"time"
)

// FuzzWebhookSignature feeds arbitrary signature headers and bodies to the
// verifier. It must never panic, and it may only accept a request whose
// signature is the HMAC of exactly these bytes with a timestamp inside the
// window.
func FuzzWebhookSignature(f *testing.F) {
	f.Add(specTimestamp, specSignature, []byte(specBody))
	f.Add(specTimestamp, strings.ToUpper(specSignature), []byte(specBody))
	f.Add("2025-04-22T02:07:07Z", specSignature, []byte(specBody))
	f.Add("", "", []byte(nil))
	f.Add("1745287627.0", specSignature[:63], []byte("{}"))
	f.Add("99999999999999999999", "zz", []byte{0xff, 0x00})
	now := time.Unix(1745287627, 0)
	f.Fuzz(func(t *testing.T, ts, sig string, body []byte) {
		v := mustVerifier(t, AuthRequired, 5*time.Minute, 16)
		got := v.Verify(ts, sig, body, now)
		if !got.Allowed {
			switch got.Reason {
			case AuthReasonMissing, AuthReasonBadTimestamp, AuthReasonBadSignature, AuthReasonExpired, AuthReasonReplayed:
			default:
				t.Fatalf("refused with reason %q, outside the closed set", got.Reason)
			}
			return
		}
		if want := SignWebhook([]byte(specSecret), ts, body); !strings.EqualFold(sig, want) {
			t.Fatalf("accepted signature %q for ts %q, want only %q", sig, ts, want)
		}
		tt, ok := parseWebhookTimestamp(ts)
		if !ok || tt.Sub(now).Abs() > 5*time.Minute {
			t.Fatalf("accepted timestamp %q outside the window", ts)
		}
		if again := v.Verify(ts, sig, body, now); again.Reason != AuthReasonReplayed {
			t.Fatalf("second delivery: got %+v, want replayed", again)
		}
	})
}
