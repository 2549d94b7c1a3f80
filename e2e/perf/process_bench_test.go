package perf

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/http/pprof"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"opscore-sidecar/e2e/harness"
	"opscore-sidecar/proxy/h1"
)

var (
	flagDuration = flag.Duration("perf.duration", 5*time.Second, "measured time of one target in one round")
	flagWarmup   = flag.Duration("perf.warmup", time.Second, "unmeasured traffic sent to a target before each measured round")
	flagRounds   = flag.Int("perf.rounds", 2, "rounds of the saturated case; the order of the targets alternates between rounds")
	flagSidecar  = flag.String("perf.sidecar", "", "sidecar binary to measure (e.g. one built from an older commit, for a before/after table); empty: build cmd/sidecar of this module")
	flagLimits   = flag.Bool("perf.limits", false, "also measure row sidecar_limits: the sidecar with rate limits on (global, route and per-agent buckets at 1,000,000 req/s, so they never refuse) on top of its defaults")
	flagBaseline = flag.String("perf.baseline", "", "a second sidecar binary measured in the same run as row baseline (e.g. built from an older commit); empty: none")
	flagPprof    = flag.String("perf.pprof", "", "directory that receives the CPU and allocs profiles of an extra saturated round of the sidecar, and with -perf.bareh1 of bare_h1 (empty: none)")
	flagCaddy    = flag.String("perf.caddy", "", "Caddy binary measured as target caddy (e.g. /tmp/peers/caddy); empty: not measured")
	flagTraefik  = flag.String("perf.traefik", "", "Traefik binary measured as target traefik (e.g. /tmp/peers/traefik); empty: not measured")
	flagBareH1   = flag.Bool("perf.bareh1", false, "also measure row bare_h1: the bare proxy with proxy/h1 (the sidecar's upstream transport) in place of net/http's Transport")
	flagClient   = flag.String("perf.client", "go", "client of the saturated case: go (the in-process closed loop) or wrk (wrk -t1 -c64, from PATH; needs whole-second -perf.duration and -perf.warmup)")
)

const (
	// conns is the number of client connections (closed loop: each sends
	// its next request when the previous answer has arrived).
	conns = 64
	// think is the wait between two requests of one connection in the
	// below-saturation case.
	think = 10 * time.Millisecond
	// statePath is the state_update route (POST /v1/opscore/agent/{agent_id}/state).
	statePath = "/v1/opscore/agent/%s/state"
	// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat
	// (100 on every Linux the project runs on).
	clockTicks = 100
)

// stateBody is a 250-byte JSON state update, as agents send it.
var stateBody = func() []byte {
	b := []byte(`{"agentId":"perf-agent","state":"idle","details":{"cpu":0.12,"memory":0.34,"task":"none","note":""},"timestamp":"2026-01-01T00:00:00Z"}`)
	pad := 250 - len(b)
	if pad < 0 {
		panic("perf: state body over 250 bytes")
	}
	// Pad inside the "note" string so the body stays valid JSON.
	i := bytes.Index(b, []byte(`"note":""`)) + len(`"note":"`)
	return slices.Concat(b[:i], bytes.Repeat([]byte("x"), pad), b[i:])
}()

// Environment of the bare-proxy child: the test binary re-executes itself
// with these set and TestMain runs the bare proxy instead of the tests.
const (
	envBareListen   = "PERF_BARE_PROXY_LISTEN"
	envBareUpstream = "PERF_BARE_PROXY_UPSTREAM"
	// envBareH1 set to 1 gives the bare proxy proxy/h1 as its transport.
	envBareH1 = "PERF_BARE_PROXY_H1"
	// envBarePprof is the address where the bare proxy serves
	// /debug/pprof/, apart from the proxied listener so that the proxy's
	// handler stays the bare ReverseProxy.
	envBarePprof = "PERF_BARE_PROXY_PPROF"
)

func TestMain(m *testing.M) {
	if listen := os.Getenv(envBareListen); listen != "" {
		os.Exit(runBareProxy(listen, os.Getenv(envBareUpstream), os.Getenv(envBareH1) == "1", os.Getenv(envBarePprof)))
	}
	os.Exit(m.Run())
}

// runBareProxy serves a bare httputil.ReverseProxy with a sync.Pool
// BufferPool and a keep-alive pool as large as the sidecar's default
// (upstream.max_idle_conns), until it is killed. With withH1 its transport
// is proxy/h1 in front of that net/http Transport, as in the sidecar. With
// pprofListen it also serves /debug/pprof/ there.
func runBareProxy(listen, upstream string, withH1 bool, pprofListen string) int {
	target, err := url.Parse(upstream)
	if err != nil || upstream == "" {
		fmt.Fprintf(os.Stderr, "bare proxy: bad upstream %q: %v\n", upstream, err)
		return 2
	}
	if pprofListen != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		go func() {
			err := (&http.Server{Addr: pprofListen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}).ListenAndServe()
			fmt.Fprintf(os.Stderr, "bare proxy: pprof: %v\n", err)
		}()
	}
	std := &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: 4 * time.Second}
	var transport http.RoundTripper = std
	if withH1 {
		var d net.Dialer
		transport = &h1.Transport{DialContext: d.DialContext, Fallback: std, MaxIdleConns: 512, IdleConnTimeout: 4 * time.Second}
	}
	rp := &httputil.ReverseProxy{
		Rewrite:    func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() },
		Transport:  transport,
		BufferPool: pool{},
	}
	srv := &http.Server{Addr: listen, Handler: rp, ReadHeaderTimeout: 5 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintf(os.Stderr, "bare proxy: %v\n", err)
		return 1
	}
	return 0
}

// pool is the bare proxy's BufferPool. buffers holds *[]byte, not []byte
// (a slice stored in an interface is boxed: an allocation per Put), and
// boxes keeps the *[]byte a Get emptied until a Put refills it, so a
// Get/Put pair allocates nothing and the baseline is not handicapped.
type pool struct{}

var (
	buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
	boxes   sync.Pool
)

func (pool) Get() []byte {
	p := buffers.Get().(*[]byte)
	b := *p
	*p = nil
	boxes.Put(p)
	return b
}

func (pool) Put(b []byte) {
	p, _ := boxes.Get().(*[]byte)
	if p == nil {
		p = new([]byte)
	}
	*p = b
	buffers.Put(p)
}

// startUpstream serves a loopback upstream that reads the body and answers
// at once with Ops-Core's small JSON acknowledgement.
func startUpstream(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"success","message":"State update accepted"}`)
	}), IdleTimeout: 5 * time.Minute}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// startBareProxy runs the bare proxy (with proxy/h1 as its transport when
// withH1) as a child process (this test binary) and stops it by PID in
// tb.Cleanup. admin is where it serves /debug/pprof/.
func startBareProxy(tb testing.TB, upstream string, withH1 bool) (base string, pid int, admin string) {
	tb.Helper()
	port, err := harness.FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	pprofPort, err := harness.FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	listen := "127.0.0.1:" + strconv.Itoa(port)
	admin = "http://127.0.0.1:" + strconv.Itoa(pprofPort)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envBareListen+"="+listen, envBareUpstream+"="+upstream,
		envBarePprof+"=127.0.0.1:"+strconv.Itoa(pprofPort))
	if withH1 {
		cmd.Env = append(cmd.Env, envBareH1+"=1")
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	base = "http://" + listen
	pid = startChild(tb, "bare proxy", cmd, func(client *http.Client) (*http.Response, error) {
		return client.Get(base + "/")
	}, nil)
	return base, pid, admin
}

// startChild starts cmd in its own process group, with SIGKILL as its
// parent-death signal, waits until probe gets a 200 from it and kills it
// by PID in tb.Cleanup. logTail, if not nil, returns the child's recent
// output for a start failure.
func startChild(tb testing.TB, name string, cmd *exec.Cmd, probe func(*http.Client) (*http.Response, error), logTail func() string) (pid int) {
	tb.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	tb.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	output := func() string {
		if logTail == nil {
			return ""
		}
		return "; its output:\n" + logTail()
	}
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := probe(client)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return cmd.Process.Pid
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		select {
		case <-done:
			tb.Fatalf("%s exited during start (%v)%s", name, cmd.ProcessState, output())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s not ready: %v%s", name, err, output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// caddyfile configures Caddy as the closest stock-Caddy analogue of the
// sidecar's default policies: retries for up to 2 s (lb_try_duration; for
// a POST, Caddy retries only when the connection to the upstream failed,
// unless lb_retry_match says otherwise), passive health checks as the
// breaker's analogue, and a 512-connection keep-alive pool like the
// sidecar's upstream.max_idle_conns. Stock Caddy has no rate limiter, so
// there is nothing for the sidecar's rate limits (off by default: rps 0)
// or its concurrency gate. No admin endpoint, no automatic HTTPS, no
// access log (no log directive), no autosaved config; the site binds to
// 127.0.0.1 only (a site address alone listens on every interface).
const caddyfile = `{
	admin off
	persist_config off
	auto_https off
}

http://127.0.0.1:%d {
	bind 127.0.0.1
	reverse_proxy %s {
		lb_try_duration 2s
		lb_try_interval 50ms
		fail_duration 10s
		max_fails 50
		unhealthy_status 5xx
		transport http {
			keepalive_idle_conns 512
			keepalive_idle_conns_per_host 512
		}
	}
}
`

// startCaddy runs the Caddy binary bin as a child process in front of
// upstream, with its Caddyfile, data, config and home directories and its
// log in a temporary directory, and stops it by PID in tb.Cleanup. A
// missing or failing binary is fatal: a benchmark asked to measure Caddy
// must not quietly leave it out.
func startCaddy(tb testing.TB, bin, upstream string) (base string, pid int) {
	tb.Helper()
	peer := newPeer(tb, "caddy", bin)
	env := []string{}
	for _, d := range []string{"XDG_DATA_HOME", "XDG_CONFIG_HOME", "HOME"} {
		p := filepath.Join(peer.dir, strings.ToLower(d))
		if err := os.Mkdir(p, 0o755); err != nil {
			tb.Fatal(err)
		}
		env = append(env, d+"="+p)
	}
	conf := peer.writeFile("Caddyfile", fmt.Sprintf(caddyfile, peer.port, upstream))
	return peer.start(env, "run", "--config", conf, "--adapter", "caddyfile")
}

// peer is a proxy of another project measured next to the sidecar, run
// from a binary given by flag -perf.<name>, in a temporary directory of
// its own that holds its configuration and its log.
type peer struct {
	tb        testing.TB
	name, bin string
	dir       string
	port      int
}

// newPeer checks that bin is an executable file (fatal otherwise: a
// benchmark asked to measure a peer must not quietly leave it out) and
// picks a free port and a temporary directory for it.
func newPeer(tb testing.TB, name, bin string) *peer {
	tb.Helper()
	if fi, err := os.Stat(bin); err != nil {
		tb.Fatalf("perf: -perf.%s=%s: %v", name, bin, err)
	} else if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		tb.Fatalf("perf: -perf.%s=%s: not an executable file", name, bin)
	}
	port, err := harness.FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	return &peer{tb: tb, name: name, bin: bin, dir: tb.TempDir(), port: port}
}

// writeFile writes a file of the peer's directory and returns its path.
func (p *peer) writeFile(name, content string) string {
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		p.tb.Fatal(err)
	}
	return path
}

// start runs the peer with args and env (added to the test's) in its
// directory, logging to <name>.log there, until it answers 200 to the
// state path on its port; it is stopped by PID in tb.Cleanup.
func (p *peer) start(env []string, args ...string) (base string, pid int) {
	tb := p.tb
	tb.Helper()
	logPath := filepath.Join(p.dir, p.name+".log")
	log, err := os.Create(logPath)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { log.Close() })
	cmd := exec.Command(p.bin, args...)
	cmd.Dir = p.dir
	cmd.Env = append(os.Environ(), env...) // later entries win
	cmd.Stdout, cmd.Stderr = log, log
	base = "http://127.0.0.1:" + strconv.Itoa(p.port)
	ready := base + fmt.Sprintf(statePath, "perf-agent")
	pid = startChild(tb, p.name+" (-perf."+p.name+"="+p.bin+")", cmd, func(client *http.Client) (*http.Response, error) {
		return client.Post(ready, "application/json", bytes.NewReader(stateBody))
	}, func() string {
		b, _ := os.ReadFile(logPath)
		if len(b) > 2000 {
			b = b[len(b)-2000:]
		}
		return string(b)
	})
	return base, pid
}

// traefikDynamic is Traefik's file-provider configuration (format: the
// upstream URL): one router for every path, through the middlewares of
// Traefik that match the sidecar's default policies, as the performance
// issue measured it ("rate limit, retry, breaker"): a rate limit per
// client address far above what the machine can send (it never refuses),
// retries (Traefik retries when the upstream could not be reached or reset
// the connection before answering), and a circuit breaker on network
// errors and 5xx; a keep-alive pool of 512 idle connections per host, as
// the bare proxy and the sidecar have. No access log.
const traefikDynamic = `http:
  routers:
    perf:
      entryPoints: [web]
      rule: "PathPrefix(` + "`/`" + `)"
      service: upstream
      middlewares: [limit, retry, breaker]
  middlewares:
    limit:
      rateLimit:
        average: 1000000
        burst: 1000000
    retry:
      retry:
        attempts: 3
        initialInterval: 50ms
    breaker:
      circuitBreaker:
        expression: "NetworkErrorRatio() > 0.5 || ResponseCodeRatio(500, 600, 0, 600) > 0.5"
  serversTransports:
    pool:
      maxIdleConnsPerHost: 512
  services:
    upstream:
      loadBalancer:
        serversTransport: pool
        servers:
          - url: "%s"
`

// startTraefik runs a Traefik binary on a free 127.0.0.1 port in front of
// upstream, configured by traefikDynamic (a file in a temporary
// directory, which is also its HOME), and stops it by PID in tb.Cleanup.
func startTraefik(tb testing.TB, bin, upstream string) (base string, pid int) {
	tb.Helper()
	peer := newPeer(tb, "traefik", bin)
	dynamic := peer.writeFile("dynamic.yml", fmt.Sprintf(traefikDynamic, upstream))
	return peer.start([]string{"HOME=" + peer.dir},
		"--entryPoints.web.address=127.0.0.1:"+strconv.Itoa(peer.port),
		"--providers.file.filename="+dynamic,
		"--log.level=ERROR",
		"--global.checkNewVersion=false",
		"--global.sendAnonymousUsage=false")
}

// procStats reads a process's CPU time (user + system) and peak RSS.
func procStats(pid int) (cpu time.Duration, hwmKiB int64, err error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) may hold spaces: count fields after ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, errors.New("perf: bad /proc stat")
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return 0, 0, errors.New("perf: short /proc stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, err
	}
	cpu = time.Duration(utime+stime) * time.Second / clockTicks
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			hwmKiB, err = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return cpu, hwmKiB, err
		}
	}
	return cpu, 0, errors.New("perf: no VmHWM in /proc status")
}

// loadAvg returns the 1, 5 and 15-minute load averages as uptime shows them.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// loadResult is what one closed-loop run measured.
type loadResult struct {
	ok       int
	elapsed  time.Duration
	lat      []time.Duration // sorted; only when asked for
	failed   int
	firstErr error
	err      error // the client itself failed (wrk: exit, errors it reported)
}

// loader sends state updates to base for d and reports what it measured;
// latencies only when keepLatency is set and the client can.
type loader func(base string, d time.Duration, keepLatency bool) loadResult

// goClient is the in-process closed loop, each connection waiting pause
// between requests.
func goClient(pause time.Duration) loader {
	return func(base string, d time.Duration, keepLatency bool) loadResult {
		return closedLoop(base, d, pause, keepLatency)
	}
}

// wrkScript makes wrk send the same request as closedLoop (one agent id
// for all connections: the sidecar's default config has no per-agent
// rate limit).
const wrkScript = `wrk.method = "POST"
wrk.path = "%s"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[%s]==]
`

// wrkClient writes the wrk script into dir and returns a loader that runs
// wrk -t1 -c64 -d<d> with it (d in whole seconds, wrk's unit) and takes
// the request count and duration from wrk's summary. It measures no
// latencies. wrk must be on PATH.
func wrkClient(tb testing.TB, dir string) loader {
	tb.Helper()
	bin, err := exec.LookPath("wrk")
	if err != nil {
		tb.Fatalf("perf: -perf.client=wrk: wrk not found on PATH (apt-get install -y wrk): %v", err)
	}
	path := fmt.Sprintf(statePath, "perf-agent")
	if bytes.Contains(stateBody, []byte("]==]")) {
		tb.Fatal("perf: state body cannot be a Lua long string")
	}
	script := filepath.Join(dir, "state.lua")
	if err := os.WriteFile(script, fmt.Appendf(nil, wrkScript, path, stateBody), 0o644); err != nil {
		tb.Fatal(err)
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"perf.duration", *flagDuration}, {"perf.warmup", *flagWarmup}} {
		if f.d < 0 || f.d%time.Second != 0 {
			tb.Fatalf("perf: -perf.client=wrk: -%s=%v is not a whole number of seconds (wrk -d takes whole seconds)", f.name, f.d)
		}
	}
	return func(base string, d time.Duration, _ bool) loadResult {
		if d == 0 {
			return loadResult{}
		}
		args := []string{"-t1", "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(int(d/time.Second)) + "s", "-s", script, base + path}
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			return loadResult{err: fmt.Errorf("wrk %s: %v; output:\n%s", strings.Join(args, " "), err, out)}
		}
		ok, elapsed, err := parseWrk(string(out))
		if err != nil {
			return loadResult{err: fmt.Errorf("wrk %s: %v; output:\n%s", strings.Join(args, " "), err, out)}
		}
		return loadResult{ok: ok, elapsed: elapsed}
	}
}

var (
	wrkTotal     = regexp.MustCompile(`(?m)^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m|h),`)
	wrkNon2xx    = regexp.MustCompile(`(?m)^\s*Non-2xx or 3xx responses: (\d+)`)
	wrkSockErrs  = regexp.MustCompile(`(?m)^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkTimeUnits = map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour}
)

// parseWrk reads the total request count and the duration from wrk's
// summary ("N requests in X.XXs, ..."; wrk prints the duration with two
// decimals, in minutes from 60 s on) and fails when wrk reports responses
// other than 2xx/3xx or socket errors (connect, read, write, timeout).
func parseWrk(out string) (requests int, elapsed time.Duration, err error) {
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		return 0, 0, fmt.Errorf("%s responses were not 2xx or 3xx", m[1])
	}
	if m := wrkSockErrs.FindStringSubmatch(out); m != nil { // printed only when one is not 0
		return 0, 0, fmt.Errorf("socket errors: connect %s, read %s, write %s, timeout %s", m[1], m[2], m[3], m[4])
	}
	m := wrkTotal.FindStringSubmatch(out)
	if m == nil {
		return 0, 0, errors.New(`no "N requests in X" line`)
	}
	requests, err = strconv.Atoi(m[1])
	if err != nil {
		return 0, 0, err
	}
	x, err := strconv.ParseFloat(m[2], 64)
	if err != nil {
		return 0, 0, err
	}
	elapsed = time.Duration(math.Round(x * float64(wrkTimeUnits[m[3]])))
	if requests == 0 || elapsed <= 0 {
		return 0, 0, fmt.Errorf("%d requests in %v", requests, elapsed)
	}
	return requests, elapsed, nil
}

// closedLoop drives base's state_update path with conns connections for
// d: each connection sends a request, reads the whole answer, waits pause
// and sends the next. Every answer must be a 200.
func closedLoop(base string, d, pause time.Duration, keepLatency bool) loadResult {
	tr := &http.Transport{MaxConnsPerHost: conns, MaxIdleConnsPerHost: conns, MaxIdleConns: conns, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var (
		mu  sync.Mutex
		res loadResult
		wg  sync.WaitGroup
	)
	start := time.Now()
	for c := range conns {
		target := base + fmt.Sprintf(statePath, "perf-agent-"+strconv.Itoa(c))
		wg.Go(func() {
			var lat []time.Duration
			ok, failed := 0, 0
			var firstErr error
			for ctx.Err() == nil {
				req, _ := http.NewRequest(http.MethodPost, target, bytes.NewReader(stateBody))
				req.Header.Set("Content-Type", "application/json")
				t0 := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed++
					if firstErr == nil {
						firstErr = err
					}
					continue
				}
				ok++
				if keepLatency {
					lat = append(lat, time.Since(t0))
				}
				if pause > 0 {
					time.Sleep(pause)
				}
			}
			mu.Lock()
			res.ok += ok
			res.failed += failed
			if res.firstErr == nil {
				res.firstErr = firstErr
			}
			res.lat = append(res.lat, lat...)
			mu.Unlock()
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	slices.Sort(res.lat)
	return res
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

// target is one proxy under test.
type target struct {
	name string
	base string
	pid  int // 0 for no proxy (direct)

	ok      int
	elapsed time.Duration
	cpu     time.Duration
	hwmKiB  int64
	lat     []time.Duration
}

// measure runs one warm-up and one measured load against t, adding up
// requests, time and the proxy's CPU.
func (t *target) measure(b *testing.B, load loader, keepLatency bool) {
	b.Helper()
	if r := load(t.base, *flagWarmup, false); r.err != nil {
		b.Fatalf("%s: warm-up: %v", t.name, r.err)
	} else if r.failed > 0 {
		b.Fatalf("%s: warm-up: %d requests failed, first: %v", t.name, r.failed, r.firstErr)
	}
	var cpu0 time.Duration
	if t.pid != 0 {
		var err error
		if cpu0, _, err = procStats(t.pid); err != nil {
			b.Fatal(err)
		}
	}
	r := load(t.base, *flagDuration, keepLatency)
	if r.err != nil {
		b.Fatalf("%s: %v", t.name, r.err)
	}
	if r.failed > 0 {
		b.Fatalf("%s: %d of %d requests failed, first: %v", t.name, r.failed, r.failed+r.ok, r.firstErr)
	}
	if t.pid != 0 {
		cpu1, hwm, err := procStats(t.pid)
		if err != nil {
			b.Fatal(err)
		}
		t.cpu += cpu1 - cpu0
		t.hwmKiB = hwm
	}
	t.ok += r.ok
	t.elapsed += r.elapsed
	t.lat = append(t.lat, r.lat...)
	slices.Sort(t.lat)
}

// captureProfiles saves a proxy's CPU profile and allocation delta profile
// over d into dir (NAME-cpu.pprof, NAME-allocs.pprof), from the
// /debug/pprof/ served at admin.
func captureProfiles(admin, dir, name string, d time.Duration) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	secs := strconv.Itoa(max(1, int(d/time.Second)))
	errc := make(chan error, 2)
	for kind, path := range map[string]string{"cpu": "/debug/pprof/profile", "allocs": "/debug/pprof/allocs"} {
		go func() {
			resp, err := http.Get(admin + path + "?seconds=" + secs)
			if err != nil {
				errc <- err
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				errc <- fmt.Errorf("perf: %s: status %d", path, resp.StatusCode)
				return
			}
			body, err := io.ReadAll(resp.Body)
			if err == nil {
				err = os.WriteFile(dir+"/"+name+"-"+kind+".pprof", body, 0o644)
			}
			errc <- err
		}()
	}
	return errors.Join(<-errc, <-errc)
}

func (t *target) rps() float64 { return float64(t.ok) / t.elapsed.Seconds() }

// cpuPer10k is the proxy's CPU seconds per 10,000 requests.
func (t *target) cpuPer10k() float64 { return t.cpu.Seconds() / float64(t.ok) * 10000 }

// BenchmarkProxyProcess runs cmd/sidecar (default config, access log off,
// every policy on) and a bare pooled httputil.ReverseProxy as processes in
// front of the same loopback upstream, drives both with the same client
// and reports, in one run:
//
//   - saturated: 64 closed-loop connections without pause; req/s of each,
//     the ratio sidecar/bare, each proxy's CPU seconds per 10k requests and
//     peak RSS. The targets take turns, -perf.rounds rounds of
//     -perf.duration each, so drifting load hits them alike.
//   - below_saturation: 64 connections each waiting 10 ms between
//     requests; p50 and p99 of the sidecar, the bare proxy and the upstream
//     directly, and each proxy's extra latency over direct.
//
// With -perf.baseline=BIN a second sidecar (say, built from the commit
// before a change) is measured in the same run as row "baseline"; with
// -perf.limits the sidecar with every rate limit on (never refusing) is
// measured as row "sidecar_limits"; with -perf.bareh1 the bare proxy with
// proxy/h1 as its transport as row "bare_h1"; with
// -perf.caddy=BIN that Caddy binary, configured as in caddyfile, is
// measured as row "caddy", and with -perf.traefik=BIN that Traefik binary,
// configured as in traefikDynamic, as row "traefik". With -perf.client=wrk the saturated case is
// driven by wrk (-t1 -c64) instead of the Go client.
//
// One iteration is one whole measurement: run with -benchtime 1x. Figures
// on a shared machine are only comparable within one run; the 1-minute
// load average is reported with them. See docs/performance.md.
func BenchmarkProxyProcess(b *testing.B) {
	// The saturated case's client: the Go closed loop or wrk. Below
	// saturation always uses the Go client, which records every
	// request's latency.
	saturatedLoad := goClient(0)
	switch *flagClient {
	case "go":
	case "wrk":
		saturatedLoad = wrkClient(b, b.TempDir())
	default:
		b.Fatalf("perf: -perf.client=%q: want go or wrk", *flagClient)
	}
	upstream := startUpstream(b)
	bareURL, barePID, _ := startBareProxy(b, upstream, false)
	var bareH1URL, bareH1Admin string
	var bareH1PID int
	if *flagBareH1 {
		bareH1URL, bareH1PID, bareH1Admin = startBareProxy(b, upstream, true)
	}
	env := []string{"SIDECAR_LOG_ACCESS=false"}
	sc := harness.StartSidecar(b, harness.SidecarOptions{Bin: *flagSidecar, UpstreamURL: upstream, Env: env})
	var limited *harness.Proc
	if *flagLimits {
		// The default config has no rate-limit buckets (rps 0); these
		// turn them all on, each far above what the machine can send, so
		// the buckets are consulted and never refuse.
		limitEnv := append(slices.Clone(env),
			"SIDECAR_ADMISSION_GLOBAL_RATE_LIMIT_RPS=1000000",
			"SIDECAR_ROUTES_STATE_UPDATE_RATE_LIMIT_RPS=1000000",
			"SIDECAR_ROUTES_STATE_UPDATE_RATE_LIMIT_KEY=agent_id",
			"SIDECAR_ROUTES_STATE_UPDATE_RATE_LIMIT_PER_KEY_RPS=1000000")
		limited = harness.StartSidecar(b, harness.SidecarOptions{Bin: *flagSidecar, UpstreamURL: upstream, Env: limitEnv})
	}
	var base *harness.Proc
	if *flagBaseline != "" {
		base = harness.StartSidecar(b, harness.SidecarOptions{Bin: *flagBaseline, UpstreamURL: upstream, Env: env})
	}
	var caddyURL string
	var caddyPID int
	if *flagCaddy != "" {
		caddyURL, caddyPID = startCaddy(b, *flagCaddy, upstream)
	}
	var traefikURL string
	var traefikPID int
	if *flagTraefik != "" {
		traefikURL, traefikPID = startTraefik(b, *flagTraefik, upstream)
	}
	// proxies returns fresh targets: bare, sidecar, with -perf.baseline
	// the baseline sidecar and with -perf.caddy Caddy.
	proxies := func() []*target {
		ts := []*target{{name: "bare", base: bareURL, pid: barePID}, {name: "sidecar", base: sc.URL, pid: sc.PID()}}
		if bareH1PID != 0 {
			ts = append(ts, &target{name: "bare_h1", base: bareH1URL, pid: bareH1PID})
		}
		if limited != nil {
			ts = append(ts, &target{name: "sidecar_limits", base: limited.URL, pid: limited.PID()})
		}
		if base != nil {
			ts = append(ts, &target{name: "baseline", base: base.URL, pid: base.PID()})
		}
		if caddyPID != 0 {
			ts = append(ts, &target{name: "caddy", base: caddyURL, pid: caddyPID})
		}
		if traefikPID != 0 {
			ts = append(ts, &target{name: "traefik", base: traefikURL, pid: traefikPID})
		}
		return ts
	}
	b.Logf("load average at start: %s", loadAvg())

	b.Run("saturated", func(b *testing.B) {
		for range b.N {
			ts := proxies()
			for round := range *flagRounds {
				// Each round starts with another target, so drifting
				// load hits them alike.
				for i := range ts {
					ts[(round+i)%len(ts)].measure(b, saturatedLoad, false)
				}
			}
			bare := ts[0]
			line := "load " + loadAvg() + " | client " + *flagClient
			for _, t := range ts {
				ratio := t.rps() / bare.rps()
				b.ReportMetric(t.rps(), t.name+"-req/s")
				b.ReportMetric(t.cpuPer10k(), t.name+"-cpu-s/10k")
				b.ReportMetric(float64(t.hwmKiB)/1024, t.name+"-rss-MiB")
				if t != bare {
					b.ReportMetric(ratio, t.name+"-ratio")
				}
				line += fmt.Sprintf(" | %s %.0f req/s (%.3fx bare), %.2f cpu-s/10k (%.0f µs/req), %.1f MiB",
					t.name, t.rps(), ratio, t.cpuPer10k(), t.cpuPer10k()*100, float64(t.hwmKiB)/1024)
			}
			b.Log(line)
		}
		if *flagPprof != "" {
			// An extra, unmeasured round (always the Go client):
			// profiling costs CPU of its own. With -perf.bareh1 a second
			// one profiles bare_h1, for go tool pprof -diff_base.
			profiled := []struct{ name, admin, url string }{{"sidecar", sc.AdminURL, sc.URL}}
			if bareH1PID != 0 {
				profiled = append(profiled, struct{ name, admin, url string }{"bare_h1", bareH1Admin, bareH1URL})
			}
			for _, p := range profiled {
				profiles := make(chan error, 1)
				go func() { profiles <- captureProfiles(p.admin, *flagPprof, p.name, *flagDuration) }()
				r := closedLoop(p.url, *flagDuration+time.Second, 0, false)
				if err := <-profiles; err != nil {
					b.Fatal(err)
				}
				b.Logf("%s: profiles of %d requests written to %s", p.name, r.ok, *flagPprof)
			}
		}
	})

	b.Run("below_saturation", func(b *testing.B) {
		for range b.N {
			direct := &target{name: "direct", base: upstream}
			ts := append([]*target{direct}, proxies()...)
			for _, t := range ts {
				t.measure(b, goClient(think), true)
			}
			us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
			d50, d99 := quantile(direct.lat, 0.50), quantile(direct.lat, 0.99)
			line := "load " + loadAvg() + " | client go"
			for _, t := range ts {
				p50, p99 := quantile(t.lat, 0.50), quantile(t.lat, 0.99)
				b.ReportMetric(us(p50), t.name+"-p50-µs")
				b.ReportMetric(us(p99), t.name+"-p99-µs")
				line += fmt.Sprintf(" | %s p50 %v p99 %v", t.name, p50.Round(time.Microsecond), p99.Round(time.Microsecond))
				if t != direct {
					b.ReportMetric(us(p50-d50), t.name+"-p50-delta-µs")
					b.ReportMetric(us(p99-d99), t.name+"-p99-delta-µs")
					line += fmt.Sprintf(" (%+v, %+v vs direct; %.2f cpu-s/10k)", (p50 - d50).Round(time.Microsecond), (p99 - d99).Round(time.Microsecond), t.cpuPer10k())
				}
			}
			b.Log(line)
		}
	})
}
