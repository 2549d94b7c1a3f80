package outbox_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"opscore-sidecar/proxy/outbox"
)

// A bolt outbox and a deliverer that replays messages to an upstream.
func Example() {
	dir, _ := os.MkdirTemp("", "outbox-example-")
	defer os.RemoveAll(dir)
	store, err := outbox.OpenBolt(filepath.Join(dir, "outbox.db"), outbox.Limits{MaxMessages: 10000, MaxBytes: 64 << 20})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()

	got := make(chan string, 1)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Method + " " + r.URL.RequestURI() + " " + r.Header.Get("X-Request-Id")
		w.WriteHeader(http.StatusCreated)
	}))
	defer upstream.Close()

	send := func(ctx context.Context, m *outbox.Message) (int, error) {
		req, err := http.NewRequestWithContext(ctx, m.Method, upstream.URL+m.Path, strings.NewReader(string(m.Body)))
		if err != nil {
			return 0, err
		}
		req.Header = m.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	delivered := make(chan struct{})
	d := outbox.NewDeliverer(store, send, outbox.DelivererOptions{Observer: outbox.Observer{
		Delivered: func(*outbox.Message, time.Duration) { close(delivered) },
	}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.Run(ctx)

	// The proxy, on a registration it cannot hold any longer:
	m := &outbox.Message{
		Route: "notify", Method: http.MethodPost, Path: "/v1/agents/a1/register?src=agentkit",
		Header: http.Header{"X-Request-Id": {"req-1"}}, Body: []byte(`{"agent":"a1"}`),
		AgentID: "a1", RequestID: "req-1",
	}
	if err := store.Enqueue(ctx, m); err != nil {
		fmt.Println(err) // outbox.ErrFull: answer 503, not 202
		return
	}
	d.Kick()
	fmt.Println(<-got)
	<-delivered
	pending, _ := store.Pending(ctx, "a1")
	fmt.Println("pending:", pending)
	// Output:
	// POST /v1/agents/a1/register?src=agentkit req-1
	// pending: false
}
