package configs

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// promtoolHint is the failure message when promtool is not installed.
const promtoolHint = "promtool not found on PATH; install it: apt-get install -y prometheus"

// promtool runs promtool with args in dir and fails t with its output when
// it exits non-zero.
func promtool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal(promtoolHint)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestPromtoolCheckRules(t *testing.T) {
	out := promtool(t, "prometheus", "check", "rules", "alerts.yml")
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("got promtool output %q, want SUCCESS", out)
	}
}

func TestPromtoolCheckConfig(t *testing.T) {
	out := promtool(t, "prometheus", "check", "config", "prometheus.yml")
	if !strings.Contains(out, "1 rule files found") {
		t.Errorf("got promtool output %q, want the alert rule file loaded", out)
	}
}

func TestPromtoolTestRules(t *testing.T) {
	promtool(t, "prometheus", "test", "rules", "alerts_test.yml")
}

// TestEveryAlertHasFiringAndQuietCases reads alerts_test.yml: each rule must
// be expected to fire at least once and to stay quiet at least once, or the
// promtool run above proves little about it.
func TestEveryAlertHasFiringAndQuietCases(t *testing.T) {
	var f struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, filepath.Join("prometheus", "alerts_test.yml"), &f)
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range f.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	rules, err := AlertRules()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		if !fires[r.Alert] {
			t.Errorf("alert %s: got no test case where it fires, want one", r.Alert)
		}
		if !quiet[r.Alert] {
			t.Errorf("alert %s: got no test case where it stays quiet, want one", r.Alert)
		}
	}
}

// TestAlertsCarryRunbookAndDashboard: every alert says what happened, why
// it matters, where to look and what to do.
func TestAlertsCarryRunbookAndDashboard(t *testing.T) {
	rules, err := AlertRules()
	if err != nil {
		t.Fatal(err)
	}
	deploy := readFile(t, filepath.Join("..", "docs", "deploy.md"))
	for _, r := range rules {
		for _, key := range []string{"summary", "description", "dashboard", "runbook_url"} {
			if r.Annotations[key] == "" {
				t.Errorf("alert %s: got no %s annotation, want one", r.Alert, key)
			}
		}
		if sev := r.Labels["severity"]; sev != "critical" && sev != "warning" {
			t.Errorf("alert %s: got severity %q, want critical or warning", r.Alert, sev)
		}
		if !strings.Contains(r.Annotations["dashboard"], "/d/opscore-sidecar/") {
			t.Errorf("alert %s: got dashboard link %q, want the provisioned dashboard uid opscore-sidecar", r.Alert, r.Annotations["dashboard"])
		}
		anchor := "#" + strings.ToLower(r.Alert)
		if want := "docs/deploy.md" + anchor; r.Annotations["runbook_url"] != want {
			t.Errorf("alert %s: got runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
		}
		if !strings.Contains(deploy, "### "+r.Alert+"\n") {
			t.Errorf("alert %s: docs/deploy.md has no heading %q for the runbook link", r.Alert, "### "+r.Alert)
		}
	}
}
