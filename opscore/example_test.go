package opscore_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"

	"opscore-sidecar/opscore"
)

// ExampleNew runs the core with zero configuration (memory store, built-in
// sample workflow) and registers an agent through the AgentKit webhook.
func ExampleNew() {
	svc, err := opscore.New(opscore.Options{
		Store:  opscore.NewMemoryStore(),
		APIKey: "secret",
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	defer svc.Close()
	srv := httptest.NewServer(svc.Handler())
	defer srv.Close()

	body := `{"event_type":"REGISTER","agent_details":{"agentId":"agent-1","agentName":"A",` +
		`"version":"1.0","contactEndpoint":"http://agent-1:8080"}}`
	resp, err := srv.Client().Post(srv.URL+"/v1/opscore/internal/agent/notify", "application/json", strings.NewReader(body))
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(b))
	// Output: 200 {"status":"success","message":"Agent agent-1 registered successfully."}
}
