package loadgen

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"time"
)

// newTransport returns an HTTP/1.1 transport for the load generator:
// no proxy from the environment, no compression, keep-alive connections
// kept until the server closes them (like python-requests' pool).
func newTransport(conns int) *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     0,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
}

// emptyBody is a non-nil empty body for GET requests; with ContentLength 0
// net/http sends no body but also does not retry the request on a reused
// connection that the server closed.
type emptyBody struct{}

func (emptyBody) Read([]byte) (int, error) { return 0, io.EOF }
func (emptyBody) Close() error             { return nil }

// call is one request to make.
type call struct {
	method, name, path string
	body               []byte
	auth               bool
	registration       bool
	headers            [][2]string
}

// caller sends calls through one http.Client and records them.
type caller struct {
	client  *http.Client
	target  string
	apiKey  string
	rec     *Recorder
	observe func(Exchange)
}

// Exchange is one request as Config.Observe sees it.
type Exchange struct {
	// Method and Name are the request's method and its statistics name
	// (NameNotify, NameState, ...); Path is the request path sent.
	Method, Name, Path string
	// Registration is true for the on_start registration.
	Registration bool
	// Body is the request body (nil for a GET).
	Body []byte
	// Sent is when the request was handed to the client, End when its
	// answer (or error) was complete.
	Sent, End time.Time
	// Status is the HTTP status, 0 with Err on a transport error.
	Status int
	// Header is the response header (nil with Err).
	Header http.Header
	// Err is the client's transport error, if any.
	Err error
}

// do sends c and records its outcome; latency runs from scheduled (the
// open model's planned send time) or from the actual send when scheduled
// is zero. It returns the status (0 without a response), the body and the
// failure. A request cut short because ctx ended is not recorded.
func (cl *caller) do(ctx context.Context, c call, scheduled time.Time) (int, []byte, *Failure) {
	req, err := http.NewRequestWithContext(ctx, c.method, cl.target+c.path, nil)
	if err != nil {
		f := &Failure{Kind: KindOther, Message: err.Error()}
		cl.rec.Record(c.method, c.name, time.Now(), 0, f, false)
		return 0, nil, f
	}
	if c.body != nil {
		// Setting Body directly leaves GetBody nil, so the request is not
		// replayable: like python-requests (no retries), the client then
		// reports a keep-alive race instead of silently resending. The
		// NopCloser still lets net/http send headers and body in one write.
		req.Body = io.NopCloser(bytes.NewReader(c.body))
		req.ContentLength = int64(len(c.body))
		req.Header.Set("Content-Type", "application/json")
	} else {
		req.Body = emptyBody{}
	}
	if c.auth {
		req.Header.Set("Authorization", "Bearer "+cl.apiKey)
	}
	for _, h := range c.headers {
		req.Header.Set(h[0], h[1])
	}
	// Whether the request went out on a reused keep-alive connection tells
	// a keep-alive race (reused) from a fault on a fresh connection.
	var reused bool
	req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
	}))
	start := time.Now()
	if scheduled.IsZero() || scheduled.After(start) {
		scheduled = start
	}
	resp, err := cl.client.Do(req)
	var body []byte
	var header http.Header
	status := 0
	if err == nil {
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		status, header = resp.StatusCode, resp.Header
	}
	end := time.Now()
	if err != nil && ctx.Err() != nil {
		return 0, nil, nil
	}
	f, queued := ClassifyResponse(c.name, c.registration, status, header, err)
	if f != nil {
		f.Reused = reused
	}
	cl.rec.Record(c.method, c.name, end, end.Sub(scheduled), f, queued)
	if cl.observe != nil {
		x := Exchange{Method: c.method, Name: c.name, Path: c.path, Registration: c.registration, Body: c.body,
			Sent: start, End: end, Err: err}
		if err == nil { // Status and Header are 0 and nil with Err (a body cut short too)
			x.Status, x.Header = status, header
		}
		cl.observe(x)
	}
	return status, body, f
}
