package metrics

// The bounded label values the sidecar uses; New pre-creates a child for
// each so dashboards see every series from the first scrape. Add a value
// here when a new one is needed. Attempt results, retry reasons and the
// other values the sidecar computes itself are declared here only, as
// constants that package policy (policy.Outcome, policy.RetryPolicy) and
// the proxy use; the admission and auth reasons come from package policy's
// typed constants, and the proxy's tests keep those in step with the lists
// below.

// Routes are the sidecar's fixed route names (label route).
var Routes = []string{"notify", "state_update", "state_get", "workflow", "default"}

// RouteClass maps each fixed route to its default priority class; it is
// used only to pre-create children of the requests and admission
// rejections counters.
var RouteClass = map[string]string{
	"notify": "critical", "state_update": "bulk", "state_get": "bulk",
	"workflow": "critical", "default": "bulk",
}

// Classes are the priority classes (label class).
var Classes = []string{"critical", "bulk"}

// Outcomes is the closed set of request outcomes (label outcome).
var Outcomes = []string{
	"forwarded", "rate_limited", "shed", "queue_timeout", "breaker_open",
	"auth_failed", "too_large", "not_found", "upstream_error", "upstream_timeout", "client_closed", "bad_request",
	"queued",
}

// Upstream attempt results (label result of upstream_attempts_total), the
// values policy.Outcome.Label gives: ok and http_5xx for a response,
// refused, reset, timeout and closed for a transport failure, canceled
// (the client went away, not the upstream's fault) and error (anything
// unclassified) so that every attempt is counted.
const (
	ResultOK       = "ok"
	ResultHTTP5xx  = "http_5xx"
	ResultRefused  = "refused"
	ResultReset    = "reset"
	ResultTimeout  = "timeout"
	ResultClosed   = "closed"
	ResultCanceled = "canceled"
	ResultError    = "error"
)

// AttemptResults lists every attempt result.
var AttemptResults = []string{ResultOK, ResultHTTP5xx, ResultRefused, ResultReset, ResultTimeout, ResultClosed, ResultCanceled, ResultError}

// RetryHTTP429 is the retry reason of an upstream 429 with Retry-After.
const RetryHTTP429 = "http_429"

// RetryReasons is the reason label of retries_total: why an attempt was
// retried (policy.RetryDecision's Reason). It reuses the failed attempt's
// result, plus http_429 for an upstream 429 with Retry-After.
var RetryReasons = []string{ResultRefused, ResultReset, ResultClosed, ResultTimeout, ResultHTTP5xx, RetryHTTP429}

// AdmissionReasons lists every admission rejection reason (label reason
// of admission_rejections_total; policy.AdmissionReason).
var AdmissionReasons = []string{"global_rate", "route_rate", "key_rate", "shed", "queue_full", "queue_timeout", "canceled", "draining", "client_limit"}

// Modes are the policy modes (label mode).
var Modes = []string{"enforce", "shadow"}

// AuthFailureReasons lists every webhook and API-key authentication
// failure reason (label reason of webhook_auth_failures_total;
// policy.AuthReason). unsigned counts unsigned webhooks let through in
// optional mode: not refused, but what required mode would refuse.
var AuthFailureReasons = []string{"missing_signature", "bad_signature", "bad_timestamp", "stale_timestamp", "replay", "bad_api_key", "unsigned"}

// Breaker state names (policy.BreakerState's String), the from/to labels
// of breaker_transitions_total; breaker_state exports the state's number.
const (
	BreakerClosed   = "closed"
	BreakerHalfOpen = "half_open"
	BreakerOpen     = "open"
)

// BreakerTransitions lists the transitions gobreaker makes.
var BreakerTransitions = [][2]string{
	{BreakerClosed, BreakerOpen}, {BreakerOpen, BreakerHalfOpen},
	{BreakerHalfOpen, BreakerClosed}, {BreakerHalfOpen, BreakerOpen},
	// An active health check that passes closes a breaker the outage
	// opened without waiting for half-open (policy.Breaker.Recover).
	{BreakerOpen, BreakerClosed},
}

// Hold results (label result of hold_total): how a held request left the
// hold.
const (
	HoldReleased     = "released"      // the upstream came back; the request was sent
	HoldQueued       = "queued"        // still down at the deadline: accepted into the outbox (202)
	HoldTimeout      = "timeout"       // still down at the deadline, no outbox: 503
	HoldFull         = "full"          // the hold was full: not held
	HoldClientClosed = "client_closed" // the client went away while held
)

// HoldResults lists every hold result.
var HoldResults = []string{HoldReleased, HoldQueued, HoldTimeout, HoldFull, HoldClientClosed}

// Outbox delivery attempt results (label result of outbox_delivery_attempts_total).
var OutboxDeliveryResults = []string{"ok", "http_4xx", "http_5xx", "error"}

// Health probe results (label result of health_probes_total).
var HealthProbeResults = []string{"ok", "fail"}

// Config reload results (label result of config_reloads_total).
const (
	ReloadSuccess = "success"
	ReloadFailure = "failure"
)
