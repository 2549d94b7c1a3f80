package loadgen

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http"
	"time"
)

// user is one virtual user: one simulated agent with its own HTTP client
// and keep-alive pool, as one Locust user is.
type user struct {
	s     *Scenario
	cfg   *Config
	cl    *caller
	r     *rand.Rand
	id    string
	total int
}

// newUser builds a user with its own transport.
func newUser(cfg *Config, rec *Recorder, seed uint64) *user {
	tr := newTransport(1)
	return &user{
		s:     &cfg.Scenario,
		cfg:   cfg,
		cl:    &caller{client: &http.Client{Transport: tr, Timeout: cfg.RequestTimeout}, target: cfg.Target, apiKey: cfg.APIKey, rec: rec, observe: cfg.Observe},
		r:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		total: cfg.Scenario.totalWeight(),
	}
}

// registerCall is the on_start registration, signed when a webhook secret
// is configured.
func registerCall(cfg *Config, id string) call {
	body := registrationBody(&cfg.Scenario, id)
	c := call{method: http.MethodPost, name: NameNotify, path: NameNotify, body: body,
		auth: cfg.Scenario.RegisterWithAuth, registration: true}
	if cfg.WebhookSecret != "" {
		ts, sig := Sign(cfg.WebhookSecret, body, time.Now())
		c.headers = [][2]string{{"X-AgentKit-Timestamp", ts}, {"X-AgentKit-Signature", sig}}
	}
	return c
}

// taskCall builds the request of task t for agent id.
func taskCall(cfg *Config, t Task, id string, r *rand.Rand) call {
	path := "/v1/opscore/agent/" + id
	switch t {
	case TaskGetState:
		return call{method: http.MethodGet, name: NameState, path: path + "/state", auth: true}
	case TaskWorkflow:
		return call{method: http.MethodPost, name: NameWorkflow, path: path + "/workflow", body: workflowBody(&cfg.Scenario, id), auth: true}
	}
	return call{method: http.MethodPost, name: NameState, path: path + "/state", body: stateBody(id, time.Now(), r), auth: true}
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// think draws the scenario's wait time.
func (u *user) think() time.Duration {
	lo, hi := u.s.ThinkMin, u.s.ThinkMax
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(u.r.Int64N(int64(hi-lo)))
}

// onStart registers the agent, then sleeps and polls its state as the
// scenario's on_start does. A failed registration is recorded and the
// user carries on, as in Locust.
func (u *user) onStart(ctx context.Context) {
	u.id = agentID(u.s.IDs, u.cfg.UniqueIDs, u.r, u.cfg.runTag)
	u.cl.do(ctx, registerCall(u.cfg, u.id), time.Time{})
	if !sleep(ctx, u.s.AfterRegister) || u.s.PollEvery <= 0 {
		return
	}
	deadline := time.Now().Add(u.s.PollFor)
	get := taskCall(u.cfg, TaskGetState, u.id, u.r)
	for time.Now().Before(deadline) {
		status, body, _ := u.cl.do(ctx, get, time.Time{})
		if status == http.StatusOK && len(body) > 0 && !bytes.Equal(bytes.TrimSpace(body), []byte("null")) {
			return
		}
		if !sleep(ctx, u.s.PollEvery) {
			return
		}
	}
}

// run is the user's life: on_start, then weighted tasks with think time
// after each, until ctx ends.
func (u *user) run(ctx context.Context) {
	defer u.cl.client.CloseIdleConnections()
	u.onStart(ctx)
	for ctx.Err() == nil {
		t := u.s.pickTask(u.r.IntN(u.total))
		u.cl.do(ctx, taskCall(u.cfg, t, u.id, u.r), time.Time{})
		if !sleep(ctx, u.think()) {
			return
		}
	}
}
