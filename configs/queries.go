package configs

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

//go:embed grafana/dashboards/opscore-sidecar.json
var dashboardJSON []byte

//go:embed prometheus/alerts.yml
var alertsYAML []byte

// Query is one PromQL expression found in the dashboard or the alert rules.
type Query struct {
	// Source says where the expression is: "dashboard: <panel title> [refId]"
	// or "alert: <alert name>".
	Source string
	// Expr is the expression as written, Grafana variables included.
	Expr string
}

// panel is the part of a Grafana panel that holds queries; a collapsed
// row keeps its panels inside it.
type panel struct {
	Title   string `json:"title"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

// DashboardQueries returns every target expression of the provisioned
// dashboard, in panel order, including panels inside collapsed rows.
// Template variable queries (label_values) are not PromQL and are returned
// by DashboardVariables instead.
func DashboardQueries() ([]Query, error) { return dashboardQueries(dashboardJSON) }

func dashboardQueries(dashboard []byte) ([]Query, error) {
	var d struct {
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(dashboard, &d); err != nil {
		return nil, fmt.Errorf("configs: dashboard: %w", err)
	}
	var qs []Query
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				qs = append(qs, Query{Source: fmt.Sprintf("dashboard: %s [%s]", p.Title, t.RefID), Expr: t.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return qs, nil
}

// DashboardVariables returns the query of every template variable of the
// dashboard, keyed by the variable's name.
func DashboardVariables() (map[string]string, error) {
	var d struct {
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query struct {
					Query string `json:"query"`
				} `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(dashboardJSON, &d); err != nil {
		return nil, fmt.Errorf("configs: dashboard: %w", err)
	}
	vars := make(map[string]string, len(d.Templating.List))
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Query.Query
	}
	return vars, nil
}

// AlertRule is one alerting rule of prometheus/alerts.yml.
type AlertRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// AlertRules returns every alerting rule of every group in alerts.yml.
func AlertRules() ([]AlertRule, error) {
	var f struct {
		Groups []struct {
			Rules []AlertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(alertsYAML, &f); err != nil {
		return nil, fmt.Errorf("configs: alert rules: %w", err)
	}
	var rs []AlertRule
	for _, g := range f.Groups {
		rs = append(rs, g.Rules...)
	}
	return rs, nil
}

// AlertQueries returns the expression of every alerting rule.
func AlertQueries() ([]Query, error) {
	rs, err := AlertRules()
	if err != nil {
		return nil, err
	}
	qs := make([]Query, len(rs))
	for i, r := range rs {
		qs[i] = Query{Source: "alert: " + r.Alert, Expr: r.Expr}
	}
	return qs, nil
}

// grafanaVar matches $name and ${name} references to Grafana variables.
var grafanaVar = regexp.MustCompile(`\$\{?(__rate_interval|__interval|__range|[A-Za-z_][A-Za-z0-9_]*)\}?`)

// ExpandGrafanaVars replaces the Grafana variables of expr so that Prometheus
// can evaluate it: the interval variables become window (a PromQL duration
// such as "1m") and every template variable becomes ".*", its "All" value
// (the dashboard uses template variables only inside =~ matchers).
func ExpandGrafanaVars(expr, window string) string {
	return grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
		name := strings.Trim(m, "${}")
		if strings.HasPrefix(name, "__") {
			return window
		}
		return ".*"
	})
}
