package proxy

import (
	"slices"
	"testing"

	"opscore-sidecar/metrics"
	"opscore-sidecar/policy"
	"opscore-sidecar/proxy/config"
)

// TestPolicyReasonsArePrecreatedLabels keeps the policy layers' reason
// values and the label values pre-created by package metrics in step, so
// every series a dashboard queries exists from the first scrape.
func TestPolicyReasonsArePrecreatedLabels(t *testing.T) {
	sets := []struct {
		name   string
		values []string
		labels []string
	}{
		{"admission", []string{
			string(policy.ReasonGlobalRate), string(policy.ReasonRouteRate), string(policy.ReasonKeyRate), string(policy.ReasonShed),
			string(policy.ReasonQueueFull), string(policy.ReasonQueueTimeout), string(policy.ReasonCanceled), string(policy.ReasonDraining),
			string(policy.ReasonClientLimit),
		}, metrics.AdmissionReasons},
		{"auth", []string{
			string(policy.AuthReasonUnsigned), string(policy.AuthReasonMissing), string(policy.AuthReasonBadTimestamp), string(policy.AuthReasonBadSignature),
			string(policy.AuthReasonExpired), string(policy.AuthReasonReplayed), string(policy.AuthReasonInvalidKey),
		}, metrics.AuthFailureReasons},
		{"outcomes", []string{
			string(OutcomeForwarded), string(OutcomeRateLimited), string(OutcomeShed), string(OutcomeQueueTimeout), string(OutcomeBreakerOpen),
			string(OutcomeAuthFailed), string(OutcomeTooLarge), string(OutcomeNotFound), string(OutcomeUpstreamError), string(OutcomeUpstreamTimeout), string(OutcomeClientClosed),
			string(OutcomeBadRequest),
		}, metrics.Outcomes},
		{"routes", config.RouteNames, metrics.Routes},
	}
	for _, s := range sets {
		for _, v := range s.values {
			if !slices.Contains(s.labels, v) {
				t.Errorf("%s: %q is not pre-created by package metrics (labels %v)", s.name, v, s.labels)
			}
		}
	}
}
