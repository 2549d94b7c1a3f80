package configs

import (
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"opscore-sidecar/metrics"
	"opscore-sidecar/opscore"
)

// series describes one series name the programs export: its labels and,
// per label, the values they pre-create.
type series struct {
	labels map[string]map[string]bool
}

// exports is what the programs export: every series name, and per label
// name every value pre-created on any series (outcome values, for example,
// are pre-created on the duration histogram, not on the requests counter).
type exports struct {
	series map[string]series
	values map[string]map[string]bool
}

// scrapeLabels are added by Prometheus to every scraped series.
var scrapeLabels = []string{"job", "instance"}

// scrapeSeries are the series Prometheus itself writes for every target.
var scrapeSeries = []string{"up", "scrape_duration_seconds", "scrape_samples_scraped"}

// openLabels have values that are not known in advance (status codes), so
// a matcher's value on them is not checked.
var openLabels = map[string]bool{"code": true, "version": true, "goversion": true}

// families gathers a registry holding the sidecar's metrics.New and the
// core's opscore.NewMetrics collectors; both pre-create their children, so
// every family is present.
func families(t *testing.T) []*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewRegistry()
	metrics.New(reg)
	opscore.NewMetrics(reg)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	return mfs
}

// exported returns every series name the sidecar's metrics.New and the
// core's opscore.NewMetrics register, as Prometheus stores them: a
// histogram h becomes h_bucket (with le), h_sum and h_count.
func exported(t *testing.T) exports {
	t.Helper()
	mfs := families(t)
	out := map[string]series{}
	values := map[string]map[string]bool{}
	add := func(name string, m *dto.Metric, extra ...string) {
		s, ok := out[name]
		if !ok {
			s = series{labels: map[string]map[string]bool{}}
			for _, l := range scrapeLabels {
				s.labels[l] = nil
			}
			out[name] = s
		}
		for _, lp := range m.GetLabel() {
			if s.labels[lp.GetName()] == nil {
				s.labels[lp.GetName()] = map[string]bool{}
			}
			s.labels[lp.GetName()][lp.GetValue()] = true
			if values[lp.GetName()] == nil {
				values[lp.GetName()] = map[string]bool{}
			}
			values[lp.GetName()][lp.GetValue()] = true
		}
		for _, l := range extra {
			if _, ok := s.labels[l]; !ok {
				s.labels[l] = nil
			}
		}
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetType() {
			case dto.MetricType_HISTOGRAM:
				add(mf.GetName()+"_bucket", m, "le")
				add(mf.GetName()+"_sum", m)
				add(mf.GetName()+"_count", m)
			case dto.MetricType_SUMMARY:
				add(mf.GetName(), m, "quantile")
				add(mf.GetName()+"_sum", m)
				add(mf.GetName()+"_count", m)
			default:
				add(mf.GetName(), m)
			}
		}
	}
	for _, name := range scrapeSeries {
		out[name] = series{labels: map[string]map[string]bool{"job": nil, "instance": nil}}
	}
	return exports{series: out, values: values}
}

// allQueries returns the dashboard's and the alert rules' expressions with
// the Grafana variables expanded.
func allQueries(t *testing.T) []Query {
	t.Helper()
	dq, err := DashboardQueries()
	if err != nil {
		t.Fatal(err)
	}
	aq, err := AlertQueries()
	if err != nil {
		t.Fatal(err)
	}
	if len(dq) < 20 || len(aq) < 6 {
		t.Fatalf("got %d dashboard and %d alert expressions, want at least 20 and 6", len(dq), len(aq))
	}
	qs := append(dq, aq...)
	for i := range qs {
		qs[i].Expr = ExpandGrafanaVars(qs[i].Expr, "1m")
	}
	return qs
}

// plainAlternatives matches a regex matcher that is only literal values
// separated by "|".
var plainAlternatives = regexp.MustCompile(`^[A-Za-z0-9_]+(\|[A-Za-z0-9_]+)*$`)

// selectorProblems lists what is wrong with the series names and label
// matchers of expr, given the exported series.
func selectorProblems(expr parser.Expr, ex exports) []string {
	known := ex.series
	var probs []string
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		s, ok := known[vs.Name]
		if !ok {
			probs = append(probs, "unknown metric "+vs.Name)
			return nil
		}
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName {
				continue
			}
			if _, ok := s.labels[m.Name]; !ok {
				probs = append(probs, vs.Name+" has no label "+m.Name)
				continue
			}
			values := ex.values[m.Name]
			if values == nil || openLabels[m.Name] {
				continue
			}
			if (m.Type == labels.MatchEqual || m.Type == labels.MatchNotEqual) && !values[m.Value] {
				probs = append(probs, vs.Name+": "+m.Name+"="+m.Value+" is not a value the program uses")
			}
			// A regex of plain alternatives ("shed|queue_timeout") names values too.
			if (m.Type == labels.MatchRegexp || m.Type == labels.MatchNotRegexp) && plainAlternatives.MatchString(m.Value) {
				for _, v := range strings.Split(m.Value, "|") {
					if !values[v] {
						probs = append(probs, vs.Name+": "+m.Name+"=~"+m.Value+" names "+v+", not a value the program uses")
					}
				}
			}
		}
		return nil
	})
	// Every "by (...)" label must exist on a series the aggregation reads.
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		agg, ok := n.(*parser.AggregateExpr)
		if !ok || agg.Without {
			return nil
		}
		have := map[string]bool{}
		parser.Inspect(agg.Expr, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok {
				for l := range known[vs.Name].labels {
					have[l] = true
				}
			}
			return nil
		})
		for _, l := range agg.Grouping {
			if !have[l] {
				probs = append(probs, "grouping by "+l+", which no series under "+agg.Op.String()+" has")
			}
		}
		return nil
	})
	return probs
}

func TestQueriesParseAndNameExportedMetrics(t *testing.T) {
	known := exported(t)
	p := parser.NewParser(parser.Options{})
	for _, q := range allQueries(t) {
		t.Run(q.Source, func(t *testing.T) {
			expr, err := p.ParseExpr(q.Expr)
			if err != nil {
				t.Fatalf("parse %q: %v", q.Expr, err)
			}
			for _, problem := range selectorProblems(expr, known) {
				t.Errorf("%s\n  in %s", problem, q.Expr)
			}
		})
	}
}

// TestSelectorProblemsCatchesMistakes shows the check above can fail: each
// broken expression must be reported.
func TestSelectorProblemsCatchesMistakes(t *testing.T) {
	known := exported(t)
	p := parser.NewParser(parser.Options{})
	tests := []struct{ name, expr, want string }{
		{"renamed metric", `rate(opscore_sidecar_request_total[1m])`, "unknown metric opscore_sidecar_request_total"},
		{"bucket of a counter", `opscore_sidecar_requests_total_bucket`, "unknown metric"},
		{"missing label", `opscore_sidecar_inflight_requests{outcome="shed"}`, "has no label outcome"},
		{"unknown outcome", `opscore_sidecar_requests_total{outcome="dropped"}`, "outcome=dropped is not a value"},
		{"unknown outcome in a regex", `opscore_sidecar_requests_total{outcome=~"shed|queue_timeot"}`, "names queue_timeot"},
		{"grouping typo", `sum by (rout) (opscore_sidecar_requests_total)`, "grouping by rout"},
		{"core label on sidecar metric", `sum by (op) (rate(opscore_sidecar_retries_total[1m]))`, "grouping by op"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expr, err := p.ParseExpr(tt.expr)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			probs := selectorProblems(expr, known)
			if !slices.ContainsFunc(probs, func(s string) bool { return strings.Contains(s, tt.want) }) {
				t.Errorf("got problems %q, want one containing %q", probs, tt.want)
			}
		})
	}
}

// TestDashboardShowsEveryMetric: a metric family that no panel shows is a
// failure mode nobody sees.
func TestDashboardShowsEveryMetric(t *testing.T) {
	dq, err := DashboardQueries()
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	p := parser.NewParser(parser.Options{})
	for _, q := range dq {
		expr, err := p.ParseExpr(ExpandGrafanaVars(q.Expr, "1m"))
		if err != nil {
			t.Fatalf("%s: parse: %v", q.Source, err)
		}
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok {
				name := vs.Name
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					name = strings.TrimSuffix(name, suffix)
				}
				used[name] = true
			}
			return nil
		})
	}
	var missing []string
	for _, mf := range families(t) {
		if !used[mf.GetName()] {
			missing = append(missing, mf.GetName())
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("got metrics on no dashboard panel: %s; want every exported family shown", strings.Join(missing, ", "))
	}
}

// labelValuesQuery matches Grafana's label_values(metric, label).
var labelValuesQuery = regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`)

func TestDashboardVariablesNameExportedLabels(t *testing.T) {
	known := exported(t)
	vars, err := DashboardVariables()
	if err != nil {
		t.Fatal(err)
	}
	if len(vars) == 0 {
		t.Fatal("got no template variables, want at least route")
	}
	for name, q := range vars {
		m := labelValuesQuery.FindStringSubmatch(q)
		if m == nil {
			t.Errorf("variable %s: got query %q, want label_values(metric, label)", name, q)
			continue
		}
		s, ok := known.series[m[1]]
		if !ok {
			t.Errorf("variable %s: unknown metric %s", name, m[1])
			continue
		}
		if _, ok := s.labels[m[2]]; !ok {
			t.Errorf("variable %s: metric %s has no label %s", name, m[1], m[2])
		}
	}
}
