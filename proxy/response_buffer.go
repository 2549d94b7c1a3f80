package proxy

import (
	"io"
	"net/http"
)

// maxBufferedResponse is the largest response body (by Content-Length)
// that the sidecar reads in full before sending the response headers.
const maxBufferedResponse = 64 << 10

// bufferSmallResponse is the ReverseProxy's ModifyResponse. It reads a
// response body of known length up to maxBufferedResponse before anything
// is sent to the client, so an upstream that dies mid-body (reset, closed
// early) gets the client a 502 problem instead of a connection closed with
// no answer. Ops-Core's JSON answers are far below the limit; larger or
// chunked bodies are streamed as they come, and a failure in them can
// only cut the response short (see observeLayer).
func bufferSmallResponse(resp *http.Response) error {
	n := resp.ContentLength
	if n <= 0 || n > maxBufferedResponse || !hasBody(resp) {
		return nil
	}
	pb := getBuf(int(n))
	_, err := io.ReadFull(resp.Body, pb.b)
	if err != nil {
		putBuf(pb)
		// Classify before closing: closing the body ends the attempt's
		// context (retry layer), which would look like a cancellation.
		ctx := resp.Request.Context()
		ended := ctx.Err() != nil
		result := errorOutcome(ctx, err).Label()
		resp.Body.Close()
		if ended {
			return err // the ErrorHandler logs client_closed
		}
		return &ProblemError{Err: err, Problem: Problem{
			Status: http.StatusBadGateway, Outcome: OutcomeUpstreamError, Reason: "body_aborted",
			Title:  "Upstream failed",
			Detail: "the upstream's response broke off before its end (" + result + ")",
		}}
	}
	resp.Body.Close()
	body := &bufferedBody{}
	body.buf.pb = pb
	body.r.init(&body.buf) // the reader's is the only reference
	resp.Body = body
	return nil
}

// hasBody reports whether resp carries a body on the wire: never for a
// HEAD request or a 1xx, 204 or 304 status, whatever Content-Length says
// (the layers below may have wrapped net/http's NoBody, so the status and
// method are checked, not the body's type).
func hasBody(resp *http.Response) bool {
	s := resp.StatusCode
	return resp.Body != nil && resp.Body != http.NoBody && resp.Request.Method != http.MethodHead &&
		s >= 200 && s != http.StatusNoContent && s != http.StatusNotModified
}

// bufferedBody is a response body read in full into a pooled buffer,
// which goes back to the pool when the ReverseProxy closes the body after
// copying it (bufpool.go).
type bufferedBody struct {
	buf sharedBuf
	r   pooledReader
}

func (b *bufferedBody) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *bufferedBody) Close() error { return b.r.Close() }
