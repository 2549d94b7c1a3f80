package loadgen

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// AccessSummary summarises the sidecar's JSON access-log lines of a window.
type AccessSummary struct {
	Lines      int            `json:"lines"`
	ByOutcome  map[string]int `json:"by_outcome"`
	ByStatus   map[int]int    `json:"by_status"`
	Retried    int            `json:"retried"`
	MaxAttempt int            `json:"max_attempts"`
}

// SummarizeAccessLog reads the log file from byte offset and counts the
// access lines (JSON objects with "route" and "status").
func SummarizeAccessLog(path string, offset int64) (AccessSummary, error) {
	s := AccessSummary{ByOutcome: map[string]int{}, ByStatus: map[int]int{}}
	f, err := os.Open(path)
	if err != nil {
		return s, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return s, err
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Route    *string `json:"route"`
			Status   *int    `json:"status"`
			Outcome  string  `json:"outcome"`
			Attempts int     `json:"attempts"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil || line.Route == nil || line.Status == nil {
			continue
		}
		s.Lines++
		s.ByOutcome[line.Outcome]++
		s.ByStatus[*line.Status]++
		if line.Attempts > 1 {
			s.Retried++
		}
		s.MaxAttempt = max(s.MaxAttempt, line.Attempts)
	}
	return s, sc.Err()
}

// fileSize returns the size of path, or 0 when it does not exist.
func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// ScrapeCounters fetches a Prometheus text exposition and returns every
// sample whose name ends in _total, keyed by "name{labels}".
func ScrapeCounters(url string) (map[string]float64, error) {
	client := &http.Client{Timeout: 5 * time.Second, Transport: newTransport(1)}
	defer client.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("loadgen: scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		// name{labels} value [timestamp] [# exemplar]
		if i := strings.Index(line, " # "); i >= 0 {
			line = line[:i]
		}
		end := strings.LastIndexByte(line, '}')
		if end < 0 {
			end = strings.IndexByte(line, ' ') - 1
		}
		if end < 0 || end+2 > len(line) {
			continue
		}
		key := line[:end+1]
		fields := strings.Fields(line[end+1:])
		name := key
		if i := strings.IndexByte(key, '{'); i >= 0 {
			name = key[:i]
		}
		if len(fields) == 0 || !strings.HasSuffix(name, "_total") {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err == nil {
			out[key] = v
		}
	}
	return out, sc.Err()
}

// CounterDeltas returns after-before for every counter whose name starts
// with prefix and that moved, sorted.
func CounterDeltas(before, after map[string]float64, prefix string) []string {
	var out []string
	for k, v := range after {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		if d := v - before[k]; d != 0 {
			out = append(out, fmt.Sprintf("%s %g", k, d))
		}
	}
	sort.Strings(out)
	return out
}
