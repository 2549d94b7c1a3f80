package loadgen

import (
	"fmt"
	"html"
	"html/template"
	"strings"
)

// series is one line of a chart.
type series struct {
	Name   string
	Color  string
	Values []float64
}

// chartW and chartH are the size of every chart in pixels.
const (
	chartW = 900
	chartH = 220
	padL   = 60
	padR   = 10
	padT   = 24
	padB   = 28
)

// lineChart renders series over seconds as an inline SVG with axes, a
// y-axis maximum and a legend. It needs no script and no external file.
func lineChart(title, unit string, ss []series) template.HTML {
	n := 0
	top := 0.0
	for _, s := range ss {
		n = max(n, len(s.Values))
		for _, v := range s.Values {
			top = max(top, v)
		}
	}
	if top == 0 {
		top = 1
	}
	top *= 1.05
	pw, ph := float64(chartW-padL-padR), float64(chartH-padT-padB)
	x := func(i int) float64 {
		if n <= 1 {
			return padL
		}
		return padL + pw*float64(i)/float64(n-1)
	}
	y := func(v float64) float64 { return padT + ph*(1-v/top) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s">`,
		chartW, chartH, chartW, chartH, html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="%d" y="16" font-size="13" font-weight="bold">%s</text>`, padL, html.EscapeString(title))
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.0f" height="%.0f" fill="none" stroke="#bbb"/>`, padL, padT, pw, ph)
	for _, f := range []float64{0, 0.5, 1} {
		v := top / 1.05 * f
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#eee"/>`, padL, chartW-padR, y(v), y(v))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-size="11" text-anchor="end">%s</text>`, padL-4, y(v)+4, fmtNum(v)+" "+html.EscapeString(unit))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11">0 s</text>`, padL, chartH-8)
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" text-anchor="end">%d s</text>`, chartW-padR, chartH-8, max(0, n-1))
	lx := padL + 8*len(title) + 24 // the legend starts after the bold title
	for _, s := range ss {
		if len(s.Values) == 0 {
			continue
		}
		var pts strings.Builder
		for i, v := range s.Values {
			fmt.Fprintf(&pts, "%.1f,%.1f ", x(i), y(v))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`, s.Color, strings.TrimSpace(pts.String()))
		fmt.Fprintf(&b, `<rect x="%d" y="8" width="10" height="10" fill="%s"/><text x="%d" y="17" font-size="11">%s</text>`,
			lx, s.Color, lx+14, html.EscapeString(s.Name))
		lx += 20 + 7*len(s.Name)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// fmtNum prints a chart label compactly.
func fmtNum(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}
