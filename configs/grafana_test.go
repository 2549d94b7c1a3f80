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

func TestDashboardPanels(t *testing.T) {
	uids, _ := provisionedDatasources(t)
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			ID          int    `json:"id"`
			Type        string `json:"type"`
			Title       string `json:"title"`
			Description string `json:"description"`
			Datasource  struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			GridPos struct{ X, Y, W, H int } `json:"gridPos"`
			Targets []struct {
				Expr       string `json:"expr"`
				Exemplar   bool   `json:"exemplar"`
				Datasource struct {
					UID string `json:"uid"`
				} `json:"datasource"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(dashboardJSON, &d); err != nil {
		t.Fatal(err)
	}
	if d.UID != "opscore-sidecar" {
		t.Errorf("dashboard uid: got %q, want opscore-sidecar (alert links use it)", d.UID)
	}
	ids := map[int]bool{}
	exemplars := false
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel %q: id %d used twice", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W < 1 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: got x=%d w=%d, want inside the 24-column grid", p.Title, p.GridPos.X, p.GridPos.W)
		}
		if p.Type == "row" {
			continue
		}
		if p.Description == "" {
			t.Errorf("panel %q: got no description, want one saying what it shows", p.Title)
		}
		if _, ok := uids[p.Datasource.UID]; !ok {
			t.Errorf("panel %q: datasource uid %q is not provisioned", p.Title, p.Datasource.UID)
		}
		for _, tg := range p.Targets {
			if _, ok := uids[tg.Datasource.UID]; !ok {
				t.Errorf("panel %q: target datasource uid %q is not provisioned", p.Title, tg.Datasource.UID)
			}
			exemplars = exemplars || (tg.Exemplar && strings.Contains(tg.Expr, "opscore_sidecar_request_duration_seconds_bucket"))
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q: got no queries", p.Title)
		}
	}
	if !exemplars {
		t.Error("got no latency query with exemplars on, want the request duration quantiles to show trace exemplars")
	}
}
