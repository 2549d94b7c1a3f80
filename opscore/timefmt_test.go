package opscore

import (
	"errors"
	"testing"
	"time"
)

func TestNormaliseTimestamp(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct{ in, want string }{
		{"2025-04-21T18:15:00.123456+00:00", "2025-04-21T18:15:00.123456Z"},
		{"2025-04-21T18:15:00.123456Z", "2025-04-21T18:15:00.123456Z"},
		{"2025-04-21T20:15:00.5+02:00", "2025-04-21T18:15:00.5Z"},
		{"2025-04-21T18:15:00.120000", "2025-04-21T18:15:00.12Z"},
		{"2025-04-21T18:15:00", "2025-04-21T18:15:00Z"},
		{"2025-04-21 18:15", "2025-04-21T18:15:00Z"},
		{"2025-04-21T18", "2025-04-21T18:00:00Z"},
		{"2025-04-21", "2025-04-21T00:00:00Z"},
		{"20250421T181500-0130", "2025-04-21T19:45:00Z"},
		{"2025-04-21T18:15:00.1234567Z", "2025-04-21T18:15:00.123456Z"},
		{"", "2030-01-02T03:04:05Z"},
		{"yesterday", "2030-01-02T03:04:05Z"},
		{"2025-02-30T00:00:00", "2030-01-02T03:04:05Z"},
		{"2025-04-21T24:00:00", "2030-01-02T03:04:05Z"},
		{"2025-04-21T18:15:00+25:00", "2030-01-02T03:04:05Z"},
		{"2025-04-21T18:15:00.", "2030-01-02T03:04:05Z"},
		{"0001-01-01T05:00:00+05:00", "0001-01-01T00:00:00Z"},
		{"9999-12-31T23:59:59.9999999Z", "9999-12-31T23:59:59.999999Z"},
		{"0000-12-31T23:00:00-02:00", "2030-01-02T03:04:05Z"}, // year 0 does not parse, as in Python
	}
	for _, tt := range tests {
		if got, err := normaliseTimestamp(tt.in, now); got != tt.want || err != nil {
			t.Errorf("normaliseTimestamp(%q): got %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

// TestNormaliseTimestampRefusesYearsOutside1To9999 checks timestamps whose
// UTC year leaves 0001-9999, and a clock that does, are refused rather than
// written as "0000-..." or "10000-...".
func TestNormaliseTimestampRefusesYearsOutside1To9999(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, in := range []string{
		"0001-01-01T00:00:00+00:01",
		"0001-01-01T04:59:59.999999+05:00",
		"00010101T000000+2359",
		"9999-12-31T23:00:00-01:00",
		"9999-12-31T23:59:59.999999-00:00:01",
	} {
		got, err := normaliseTimestamp(in, now)
		if !errors.Is(err, errTimestampRange) {
			t.Errorf("normaliseTimestamp(%q): got %q, %v; want errTimestampRange", in, got, err)
		}
	}
	for _, clock := range []time.Time{time.Date(0, 12, 31, 0, 0, 0, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if got, err := normaliseTimestamp("not a time", clock); !errors.Is(err, errTimestampRange) {
			t.Errorf("normaliseTimestamp with the clock at %v: got %q, %v; want errTimestampRange", clock, got, err)
		}
	}
}
