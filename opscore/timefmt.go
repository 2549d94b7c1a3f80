package opscore

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// formatTimestamp writes t in UTC the way pydantic v2 serialises an aware
// UTC datetime: microsecond precision with trailing zeros of the fraction
// dropped (the whole fraction when it is zero), and a "Z" suffix.
func formatTimestamp(t time.Time) string {
	return t.UTC().Truncate(time.Microsecond).Format("2006-01-02T15:04:05.999999Z")
}

// errTimestampRange refuses a timestamp that formatTimestamp cannot write
// as YYYY (Go would write "0000-12-31..." or "10000-01-01..."; Python's
// astimezone raises OverflowError).
var errTimestampRange = errors.New("timestamp is outside the years 0001-9999 once converted to UTC")

// normaliseTimestamp turns a client timestamp into the stored form: parsed
// like Python's datetime.fromisoformat (after replacing a trailing "Z"),
// converted to UTC (naive values are taken as UTC), and written by
// formatTimestamp. Empty or unparseable input yields now, as the original
// does. A timestamp (or now) whose UTC year is outside 0001-9999, such as
// 0001-01-01T00:30:00+01:00, is errTimestampRange: the caller refuses it
// (422) and writes nothing.
func normaliseTimestamp(s string, now time.Time) (string, error) {
	t, ok := parseISO(s)
	if !ok {
		t = now
	}
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return "", errTimestampRange
	}
	return formatTimestamp(t), nil
}

// parseISO accepts the ISO 8601 forms of Python 3.11's fromisoformat that
// clients send: a date (YYYY-MM-DD or YYYYMMDD), optionally followed by one
// separator character and a time HH[:MM[:SS[.f...]]] (or the basic form
// without colons), and an optional offset Z, ±HH[:MM[:SS]].
func parseISO(s string) (time.Time, bool) {
	if strings.HasSuffix(s, "Z") || strings.HasSuffix(s, "z") {
		s = s[:len(s)-1] + "+00:00"
	}
	var datePart, timePart string
	switch {
	case len(s) >= 10 && s[4] == '-':
		datePart, timePart = s[:10], s[10:]
	case len(s) >= 8:
		datePart, timePart = s[:8], s[8:]
	default:
		return time.Time{}, false
	}
	y, m, d, ok := parseDate(datePart)
	if !ok {
		return time.Time{}, false
	}
	if timePart == "" {
		return time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC), true
	}
	// One separator of any kind (Python accepts "T", " " and others).
	timePart = timePart[1:]
	clock, offset := timePart, ""
	if i := strings.IndexAny(timePart, "+-"); i >= 0 {
		clock, offset = timePart[:i], timePart[i:]
	}
	h, mi, sec, nsec, ok := parseClock(clock)
	if !ok {
		return time.Time{}, false
	}
	loc := time.UTC
	if offset != "" {
		secs, ok := parseOffset(offset)
		if !ok {
			return time.Time{}, false
		}
		loc = time.FixedZone("", secs)
	}
	t := time.Date(y, time.Month(m), d, h, mi, sec, nsec, loc)
	if t.Day() != d || t.Hour() != h {
		return time.Time{}, false // e.g. February 30th normalised by time.Date
	}
	return t, true
}

func parseDate(s string) (y, m, d int, ok bool) {
	s = strings.ReplaceAll(s, "-", "")
	if len(s) != 8 {
		return 0, 0, 0, false
	}
	y, ok1 := digits(s[0:4])
	m, ok2 := digits(s[4:6])
	d, ok3 := digits(s[6:8])
	if !ok1 || !ok2 || !ok3 || y < 1 || m < 1 || m > 12 || d < 1 || d > 31 {
		return 0, 0, 0, false
	}
	return y, m, d, true
}

func parseClock(s string) (h, m, sec, nsec int, ok bool) {
	frac := ""
	if i := strings.IndexAny(s, ".,"); i >= 0 {
		s, frac = s[:i], s[i+1:]
		if frac == "" || len(s) != 6 && len(s) != 8 {
			return 0, 0, 0, 0, false
		}
	}
	s = strings.ReplaceAll(s, ":", "")
	var parts [3]int
	if len(s) != 2 && len(s) != 4 && len(s) != 6 {
		return 0, 0, 0, 0, false
	}
	for i := 0; i*2 < len(s); i++ {
		v, ok := digits(s[i*2 : i*2+2])
		if !ok {
			return 0, 0, 0, 0, false
		}
		parts[i] = v
	}
	if parts[0] > 23 || parts[1] > 59 || parts[2] > 59 {
		return 0, 0, 0, 0, false
	}
	if frac != "" {
		if len(frac) > 9 {
			frac = frac[:9]
		}
		f, ok := digits(frac)
		if !ok {
			return 0, 0, 0, 0, false
		}
		for i := len(frac); i < 9; i++ {
			f *= 10
		}
		nsec = f
	}
	return parts[0], parts[1], parts[2], nsec, true
}

func parseOffset(s string) (int, bool) {
	sign := 1
	if s[0] == '-' {
		sign = -1
	}
	h, m, sec, _, ok := parseClock(s[1:])
	if !ok {
		return 0, false
	}
	return sign * (h*3600 + m*60 + sec), true
}

func digits(s string) (int, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.Atoi(s)
	return v, err == nil
}
