package config

import (
	"reflect"
	"slices"
	"strings"
	"time"
)

// This file holds the one walker over the config tree. Every place that
// needs the keys (Keys and the viper defaults, the unknown-key and
// unknown-SIDECAR_* checks, Tree for /admin/config, the reference file
// configs/sidecar.yaml) visits the tree through walk, so they cannot
// disagree on what a key is, its spelling or its order.

// node is one key of the config tree.
type node struct {
	// Path is the key's elements ("routes", "notify", "retry"); Key joins them with dots.
	Path []string
	Key  string
	// Value is the key's value; a block (struct or map) is visited before its keys.
	Value reflect.Value
	// Leaf is true for a key that holds a value rather than other keys.
	Leaf bool
	// Doc is the key's documentation: the doc comment of its struct
	// field, or of the route name's constant for a route entry (see
	// keydoc_gen.go, written by go generate from the source).
	Doc string
}

var durationType = reflect.TypeFor[time.Duration]()

// walk visits every key under v in order: struct fields in declaration
// order, map entries (the routes) in RouteNames order and then any other
// name sorted. A block is visited before the keys it holds.
func walk(v reflect.Value, visit func(n node)) {
	walkValue(nil, v, visit)
}

func walkValue(path []string, v reflect.Value, visit func(n node)) {
	child := func(name, doc string, cv reflect.Value) {
		p := append(slices.Clip(path), name)
		leaf := cv.Type() == durationType || (cv.Kind() != reflect.Struct && cv.Kind() != reflect.Map)
		visit(node{Path: p, Key: strings.Join(p, "."), Value: cv, Leaf: leaf, Doc: doc})
		if !leaf {
			walkValue(p, cv, visit)
		}
	}
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := configKey(f)
			if name == "" || name == "-" {
				continue
			}
			child(name, keyDocs[t.PkgPath()+"."+t.Name()+"."+f.Name], v.Field(i))
		}
	case reflect.Map:
		for _, name := range mapKeys(v) {
			child(name, keyDocs[routeDocKey(name)], v.MapIndex(reflect.ValueOf(name).Convert(v.Type().Key())))
		}
	}
}

// mapKeys returns the names of a map block: the fixed route names first,
// in RouteNames order, then any other name sorted.
func mapKeys(v reflect.Value) []string {
	var fixed, other []string
	for _, k := range v.MapKeys() {
		if slices.Contains(RouteNames, k.String()) {
			continue
		}
		other = append(other, k.String())
	}
	for _, name := range RouteNames {
		if v.MapIndex(reflect.ValueOf(name).Convert(v.Type().Key())).IsValid() {
			fixed = append(fixed, name)
		}
	}
	slices.Sort(other)
	return append(fixed, other...)
}

// configKey is the YAML key of a config struct field: the name in its
// mapstructure tag ("" or "-" for a field that is not a key).
func configKey(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
	return name
}

// routeDocKey is the keyDocs key of the constant that names a route.
func routeDocKey(name string) string {
	return reflect.TypeFor[Config]().PkgPath() + ".const." + name
}

// flatten lists every leaf key of cfg with its value, keyed by the dotted
// mapstructure path ("routes.notify.retry.attempts"). A nil slice is an
// empty one, so that viper sees the key.
func flatten(cfg *Config) map[string]any {
	out := map[string]any{}
	walk(reflect.ValueOf(cfg).Elem(), func(n node) {
		if !n.Leaf {
			return
		}
		if n.Value.Kind() == reflect.Slice && n.Value.IsNil() {
			out[n.Key] = reflect.MakeSlice(n.Value.Type(), 0, 0).Interface()
			return
		}
		out[n.Key] = n.Value.Interface()
	})
	return out
}

// Keys returns every configuration key in dotted form, in tree order, for
// documentation and tests.
func Keys() []string {
	var keys []string
	walk(reflect.ValueOf(Defaults()).Elem(), func(n node) {
		if n.Leaf {
			keys = append(keys, n.Key)
		}
	})
	return keys
}

// Tree returns c as nested maps keyed by the YAML keys, with durations as
// Go duration strings ("250ms"): the shape of the config file, used by
// /admin/config and the effective-config golden file.
func (c *Config) Tree() map[string]any {
	root := map[string]any{}
	blocks := map[string]map[string]any{"": root} // by path joined with NUL: a route name may hold a dot
	walk(reflect.ValueOf(c).Elem(), func(n node) {
		parent := blocks[strings.Join(n.Path[:len(n.Path)-1], "\x00")]
		name := n.Path[len(n.Path)-1]
		switch {
		case !n.Leaf:
			m := map[string]any{}
			blocks[strings.Join(n.Path, "\x00")] = m
			parent[name] = m
		case n.Value.Type() == durationType:
			parent[name] = time.Duration(n.Value.Int()).String()
		case n.Value.Kind() == reflect.Slice:
			s := make([]any, n.Value.Len())
			for i := range s {
				s[i] = n.Value.Index(i).Interface()
			}
			parent[name] = s
		default:
			parent[name] = n.Value.Interface()
		}
	})
	return root
}
