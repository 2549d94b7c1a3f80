package configs

import (
	"encoding/json"
	"strings"
	"testing"
)

// provisionedDatasources returns the uid → type of every datasource
// provisioned for Grafana, and the exemplar destinations' uids.
func provisionedDatasources(t *testing.T) (map[string]string, []string) {
	t.Helper()
	var f struct {
		Datasources []struct {
			UID      string `yaml:"uid"`
			Type     string `yaml:"type"`
			JSONData struct {
				Exemplars []struct {
					Name          string `yaml:"name"`
					DatasourceUID string `yaml:"datasourceUid"`
				} `yaml:"exemplarTraceIdDestinations"`
			} `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	readYAML(t, "grafana/provisioning/datasources/datasources.yml", &f)
	uids := map[string]string{}
	var dests []string
	for _, d := range f.Datasources {
		uids[d.UID] = d.Type
		for _, e := range d.JSONData.Exemplars {
			if e.Name != "trace_id" {
				t.Errorf("datasource %s: exemplar label %q, want trace_id (the sidecar's exemplar label)", d.UID, e.Name)
			}
			dests = append(dests, e.DatasourceUID)
		}
	}
	return uids, dests
}

func TestDatasourcesLinkExemplarsToTraces(t *testing.T) {
	uids, dests := provisionedDatasources(t)
	if uids["prometheus"] != "prometheus" {
		t.Errorf("got datasources %v, want uid prometheus of type prometheus", uids)
	}
	if len(dests) == 0 {
		t.Fatal("got no exemplar trace destination, want one")
	}
	for _, d := range dests {
		if uids[d] != "jaeger" {
			t.Errorf("exemplar destination %q: got type %q, want a provisioned jaeger datasource", d, uids[d])
		}
	}
}

// grafanaPanelTypes are the panel types of Grafana's core plugins that the
// dashboard may use; anything else would need a plugin the compose file
// does not install.
var grafanaPanelTypes = map[string]bool{
	"row": true, "timeseries": true, "stat": true, "gauge": true, "bargauge": true,
	"table": true, "state-timeline": true, "status-history": true, "heatmap": true,
	"text": true, "logs": true, "histogram": true, "barchart": true, "piechart": true,
}

// dsRef is a Grafana datasource reference.
type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// dashPanel is the part of a Grafana panel the schema checks read.
type dashPanel struct {
	ID          int                      `json:"id"`
	Type        string                   `json:"type"`
	Title       string                   `json:"title"`
	Description string                   `json:"description"`
	Repeat      string                   `json:"repeat"`
	Datasource  *dsRef                   `json:"datasource"`
	GridPos     struct{ X, Y, W, H int } `json:"gridPos"`
	Targets     []struct {
		Expr       string `json:"expr"`
		RefID      string `json:"refId"`
		Exemplar   bool   `json:"exemplar"`
		Datasource *dsRef `json:"datasource"`
	} `json:"targets"`
	FieldConfig struct {
		Defaults struct {
			Custom struct {
				Stacking struct {
					Mode string `json:"mode"`
				} `json:"stacking"`
			} `json:"custom"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Panels []dashPanel `json:"panels"`
}

// dashboard is the part of the dashboard JSON the schema checks read.
type dashboard struct {
	UID        string      `json:"uid"`
	Panels     []dashPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Multi      bool   `json:"multi"`
			IncludeAll bool   `json:"includeAll"`
			Datasource *dsRef `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

// allPanels returns the panels of d, those inside rows included.
func (d dashboard) allPanels() []dashPanel {
	var out []dashPanel
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// checkDatasource fails t unless ref names a provisioned datasource of its type.
func checkDatasource(t *testing.T, what string, ref *dsRef, uids map[string]string) {
	t.Helper()
	if ref == nil {
		t.Errorf("%s: got no datasource, want the provisioned one by uid", what)
		return
	}
	typ, ok := uids[ref.UID]
	if !ok {
		t.Errorf("%s: datasource uid %q is not provisioned", what, ref.UID)
	} else if ref.Type != typ {
		t.Errorf("%s: datasource %q has type %q, want %q (its provisioned type)", what, ref.UID, ref.Type, typ)
	}
}

func TestDashboardPanels(t *testing.T) {
	uids, _ := provisionedDatasources(t)
	var d dashboard
	if err := json.Unmarshal(dashboardJSON, &d); err != nil {
		t.Fatal(err)
	}
	if d.UID != "opscore-sidecar" {
		t.Errorf("dashboard uid: got %q, want opscore-sidecar (alert links use it)", d.UID)
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Multi || v.IncludeAll
		if v.Type == "query" {
			checkDatasource(t, "variable "+v.Name, v.Datasource, uids)
		}
	}
	ids := map[int]bool{}
	exemplars, stackedOutcomes := false, false
	for _, p := range d.allPanels() {
		if ids[p.ID] {
			t.Errorf("panel %q: id %d used twice", p.Title, p.ID)
		}
		ids[p.ID] = true
		if !grafanaPanelTypes[p.Type] {
			t.Errorf("panel %q: got type %q, want a core Grafana panel type", p.Title, p.Type)
		}
		if p.GridPos.W < 1 || p.GridPos.H < 1 || p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: got x=%d w=%d h=%d, want inside the 24-column grid", p.Title, p.GridPos.X, p.GridPos.W, p.GridPos.H)
		}
		if p.Repeat != "" && !vars[p.Repeat] {
			t.Errorf("panel %q: repeats over %q, want a multi-value template variable", p.Title, p.Repeat)
		}
		if p.Type == "row" {
			continue
		}
		if p.Description == "" {
			t.Errorf("panel %q: got no description, want one saying what it shows", p.Title)
		}
		checkDatasource(t, "panel "+p.Title, p.Datasource, uids)
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			checkDatasource(t, "panel "+p.Title+" target "+tg.RefID, tg.Datasource, uids)
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: got refId %q empty or repeated, want a unique one per target", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			exemplars = exemplars || (tg.Exemplar && strings.Contains(tg.Expr, "opscore_sidecar_request_duration_seconds_bucket"))
			if p.Type == "timeseries" && p.FieldConfig.Defaults.Custom.Stacking.Mode == "normal" &&
				strings.Contains(tg.Expr, "by (outcome)") && strings.Contains(tg.Expr, "opscore_sidecar_requests_total") {
				stackedOutcomes = true
			}
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q: got no queries", p.Title)
		}
	}
	if !exemplars {
		t.Error("got no latency query with exemplars on, want the request duration quantiles to show trace exemplars")
	}
	if !stackedOutcomes {
		t.Error("got no time series of requests stacked by outcome, want one (every failure mode in one panel)")
	}
}
