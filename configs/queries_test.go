package configs

import (
	"slices"
	"testing"
)

func TestDashboardQueriesFindsPanelsInCollapsedRows(t *testing.T) {
	dash := []byte(`{"panels": [
		{"title": "top", "targets": [{"expr": "up", "refId": "A"}]},
		{"type": "row", "title": "collapsed", "collapsed": true, "panels": [
			{"title": "inner", "targets": [{"expr": "sum(up)", "refId": "B"}]}
		]}
	]}`)
	qs, err := dashboardQueries(dash)
	if err != nil {
		t.Fatal(err)
	}
	want := []Query{{"dashboard: top [A]", "up"}, {"dashboard: inner [B]", "sum(up)"}}
	if !slices.Equal(qs, want) {
		t.Errorf("got %v, want %v", qs, want)
	}
}

func TestExpandGrafanaVars(t *testing.T) {
	tests := []struct{ in, want string }{
		{`rate(x{route=~"$route"}[$__rate_interval])`, `rate(x{route=~".*"}[1m])`},
		{`increase(x{a=~"${route}"}[$__range])`, `increase(x{a=~".*"}[1m])`},
		{`rate(x[$__interval])`, `rate(x[1m])`},
		{`sum(x)`, `sum(x)`},
	}
	for _, tt := range tests {
		if got := ExpandGrafanaVars(tt.in, "1m"); got != tt.want {
			t.Errorf("ExpandGrafanaVars(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}
