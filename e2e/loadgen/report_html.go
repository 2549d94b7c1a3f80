package loadgen

import (
	"html/template"
	"io"
	"sort"
)

// kindColors gives each failure kind a fixed color in the charts.
var kindColors = map[Kind]string{
	KindRefused: "#8c564b", KindReset: "#d62728", KindClosed: "#ff7f0e", KindTimeout: "#9467bd",
	KindOther: "#7f7f7f", Kind4xx: "#bcbd22", Kind429: "#17becf", Kind5xx: "#e377c2", Kind503: "#1f77b4",
	KindStatus: "#2ca02c",
}

// charts builds the four charts over time from the timeline.
func (r *Result) charts() []template.HTML {
	var rps, fps, p50, p99, users []float64
	kinds := map[Kind][]float64{}
	for _, p := range r.Timeline {
		for k := range p.Kinds {
			kinds[k] = nil
		}
	}
	for _, p := range r.Timeline {
		rps = append(rps, float64(p.Requests))
		fps = append(fps, float64(p.Failures))
		p50 = append(p50, p.P50Ms)
		p99 = append(p99, p.P99Ms)
		users = append(users, float64(p.Users))
		for k := range kinds {
			kinds[k] = append(kinds[k], float64(p.Kinds[k]))
		}
	}
	names := make([]Kind, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return names[i] < names[j] })
	var byKind []series
	for _, k := range names {
		byKind = append(byKind, series{string(k), kindColors[k], kinds[k]})
	}
	if len(byKind) == 0 {
		byKind = []series{{"no failures", "#2ca02c", make([]float64, len(r.Timeline))}}
	}
	return []template.HTML{
		lineChart("Requests per second", "/s", []series{{"requests", "#1f77b4", rps}, {"failures", "#d62728", fps}}),
		lineChart("Response time", "ms", []series{{"p50", "#2ca02c", p50}, {"p99", "#ff7f0e", p99}}),
		lineChart("Failures per second by kind", "/s", byKind),
		lineChart("Virtual users", "", []series{{"users", "#9467bd", users}}),
	}
}

var htmlReport = template.Must(template.New("report").Funcs(template.FuncMap{
	"pct": failCell,
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>loadtest: scenario {{.R.Scenario}} against {{.R.Target}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;margin:8px 0 24px}
th,td{border:1px solid #ccc;padding:3px 8px;font-size:13px}
td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.total{font-weight:bold}
.bad{color:#b00}
</style></head><body>
<h1>Scenario {{.R.Scenario}}</h1>
<p>plan: {{.R.Title}}<br>
this run: {{.R.Model}} model · target <code>{{.R.Target}}</code> · users {{.R.Users}} · spawn rate {{printf "%.3g" .R.SpawnRate}}/s{{if .R.Rate}} · arrival rate {{.R.Rate}}/s{{else}} · think {{.R.Think}}{{end}} · duration {{.R.Duration}} · unique ids {{.R.UniqueIDs}}<br>
started {{.R.Started.UTC.Format "2006-01-02 15:04:05 UTC"}} · ran {{printf "%.1f" .R.Elapsed}} s{{if .R.Interrupted}} · <b>interrupted</b>{{end}}{{if .R.StopReason}} · stopped: {{.R.StopReason}}{{end}}</p>
<h2>Statistics</h2>
<table><tr><th>Type</th><th>Name</th><th># reqs</th><th># fails</th><th>Avg ms</th><th>Min</th><th>Median</th><th>p90</th><th>p99</th><th>Max</th><th>req/s</th><th>failures/s</th></tr>
{{range .R.Stats}}<tr><td>{{.Method}}</td><td>{{.Name}}</td><td class="n">{{.Requests}}</td><td class="n{{if .Failures}} bad{{end}}">{{pct .}}</td><td class="n">{{printf "%.1f" .AvgMs}}</td><td class="n">{{printf "%.1f" .MinMs}}</td><td class="n">{{printf "%.1f" .MedianMs}}</td><td class="n">{{printf "%.1f" .P90Ms}}</td><td class="n">{{printf "%.1f" .P99Ms}}</td><td class="n">{{printf "%.1f" .MaxMs}}</td><td class="n">{{printf "%.2f" .RPS}}</td><td class="n">{{printf "%.2f" .FailuresPerSec}}</td></tr>
{{end}}{{with .R.Total}}<tr class="total"><td></td><td>{{.Name}}</td><td class="n">{{.Requests}}</td><td class="n{{if .Failures}} bad{{end}}">{{pct .}}</td><td class="n">{{printf "%.1f" .AvgMs}}</td><td class="n">{{printf "%.1f" .MinMs}}</td><td class="n">{{printf "%.1f" .MedianMs}}</td><td class="n">{{printf "%.1f" .P90Ms}}</td><td class="n">{{printf "%.1f" .P99Ms}}</td><td class="n">{{printf "%.1f" .MaxMs}}</td><td class="n">{{printf "%.2f" .RPS}}</td><td class="n">{{printf "%.2f" .FailuresPerSec}}</td></tr>{{end}}
</table>
{{if .R.Total.Queued}}<h2>Accepted with 202 by the sidecar's outbox</h2>
<p>Counted as successes: the sidecar stored these requests durably and delivers them to the core later.</p>
<table><tr><th>Type</th><th>Name</th><th># 202 queued</th></tr>
{{range .R.Stats}}{{if .Queued}}<tr><td>{{.Method}}</td><td>{{.Name}}</td><td class="n">{{.Queued}}</td></tr>
{{end}}{{end}}</table>{{end}}
<h2>Failures</h2>
{{if .R.Failures}}<table><tr><th># occurrences</th><th>Type</th><th>Name</th><th>Error</th><th>kind</th></tr>
{{range .R.Failures}}<tr><td class="n">{{.Occurrences}}</td><td>{{.Method}}</td><td>{{.Name}}</td><td><code>{{.Error}}</code></td><td>{{.Kind}}</td></tr>
{{end}}</table>{{else}}<p>No failures.</p>{{end}}
{{if .R.Events}}<h2>Events</h2><ul>{{range .R.Events}}<li>{{printf "%.2f" .At}} s: {{.What}}</li>{{end}}</ul>{{end}}
<h2>Over time</h2>
{{range .Charts}}<div>{{.}}</div>
{{end}}
</body></html>
`))

// WriteHTML writes a self-contained HTML report (inline CSS and SVG, no
// script, no external URL) that a browser opens from disk.
func (r *Result) WriteHTML(w io.Writer) error {
	return htmlReport.Execute(w, struct {
		R      *Result
		Charts []template.HTML
	}{r, r.charts()})
}
