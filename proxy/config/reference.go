package config

//go:generate go run ./internal/keydoc/gen

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// ReferenceYAML renders cfg as the commented reference file: every key in
// tree order with its value, each under its documentation, which is the
// doc comment of its struct field (keydoc_gen.go, made by go generate; a
// test keeps it current). configs/sidecar.yaml is this output for Defaults().
func ReferenceYAML(cfg *Config) string {
	var b strings.Builder
	b.WriteString("# opscore-sidecar reference configuration: every key with its default.\n")
	b.WriteString("# Every key can be overridden by SIDECAR_<PATH> (dots -> underscores),\n")
	b.WriteString("# e.g. SIDECAR_UPSTREAM_URL, SIDECAR_ROUTES_NOTIFY_RETRY_ATTEMPTS.\n")
	b.WriteString("# Durations are Go durations (250ms, 2s, 5m); a number without a unit is an\n")
	b.WriteString("# error, except 0. Unknown keys and unknown SIDECAR_* variables are errors.\n")
	b.WriteString("# An empty file is refused: write {} to mean every default.\n")
	b.WriteString("# This file is generated from the Go doc comments of the config structs\n")
	b.WriteString("# (proxy/config/config.go, policy/config.go): go test ./proxy/config -run Reference -update.\n")
	b.WriteString("# The route keys are documented under the first route; every route has the same keys.\n")
	firstRoute := ""
	walk(reflect.ValueOf(cfg).Elem(), func(n node) {
		depth := len(n.Path) - 1
		indent := strings.Repeat("  ", depth)
		if depth == 0 {
			b.WriteString("\n")
		}
		if n.Path[0] == "routes" && len(n.Path) >= 2 && firstRoute == "" {
			firstRoute = n.Path[1]
		}
		if len(n.Path) <= 2 || n.Path[0] != "routes" || n.Path[1] == firstRoute {
			for _, l := range wrap(n.Doc, 96-len(indent)) {
				fmt.Fprintf(&b, "%s# %s\n", indent, l)
			}
		}
		name := n.Path[len(n.Path)-1]
		if !n.Leaf {
			fmt.Fprintf(&b, "%s%s:\n", indent, name)
			return
		}
		fmt.Fprintf(&b, "%s%s: %s\n", indent, name, yamlValue(n.Value))
	})
	return b.String()
}

// yamlValue spells a leaf value in YAML.
func yamlValue(v reflect.Value) string {
	switch {
	case v.Type() == durationType:
		return time.Duration(v.Int()).String()
	case v.Kind() == reflect.Slice:
		items := make([]string, v.Len())
		for j := range items {
			items[j] = strconv.Quote(fmt.Sprint(v.Index(j).Interface()))
		}
		return "[" + strings.Join(items, ", ") + "]"
	case v.Kind() == reflect.String:
		return strconv.Quote(v.String())
	}
	return fmt.Sprint(v.Interface())
}

// wrap splits text into lines of at most width bytes, at spaces.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
