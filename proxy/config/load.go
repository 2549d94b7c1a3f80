package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"gopkg.in/yaml.v3"
)

// EnvPrefix is the prefix of the environment overrides: SIDECAR_<PATH>,
// with dots replaced by underscores (SIDECAR_ROUTES_NOTIFY_RETRY_ATTEMPTS).
const EnvPrefix = "SIDECAR"

// LoadOptions says where a configuration comes from. Precedence, highest
// first: Overrides (flags), environment, the file, the built-in defaults.
type LoadOptions struct {
	// Path is the YAML file; empty means defaults, environment and overrides only.
	Path string
	// Overrides maps keys (e.g. "upstream.url") to values set by flags.
	Overrides map[string]any
}

// Load reads, merges and decodes a configuration, then validates it. A
// key that is not part of the tree is an error. The returned error joins
// every problem found.
func Load(opts LoadOptions) (*Config, error) {
	if opts.Path == "" {
		return decode(newViper(), nil, opts.Overrides)
	}
	doc, err := os.ReadFile(opts.Path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := LoadBytes(doc, opts.Overrides)
	if errors.Is(err, ErrEmptyConfig) {
		return nil, fmt.Errorf("config: %s is empty: %w", opts.Path, ErrEmptyConfig)
	}
	return cfg, err
}

// ErrEmptyConfig means a config document holds no keys at all: it is empty,
// blank, or only comments. Such a file is refused, at start and on reload,
// because it is what an editor's save leaves for a moment after truncating
// the file, and taking it would reset every key to its default (webhook
// auth back to off among them). A file that means "all defaults" says so
// with an empty map: {}.
var ErrEmptyConfig = errors.New("no keys (empty, blank or only comments); write {} to mean every default")

// LoadBytes is Load for a YAML document held in memory (used by tests and
// the fuzzer); the environment still applies.
func LoadBytes(doc []byte, overrides map[string]any) (*Config, error) {
	var raw map[string]any
	if err := yaml.Unmarshal(doc, &raw); err != nil {
		return nil, fmt.Errorf("config: parse: %w", err)
	}
	if raw == nil {
		return nil, fmt.Errorf("config: document has %w", ErrEmptyConfig)
	}
	keyErrs := unknownKeys(raw)
	v := newViper()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(doc)); err != nil {
		return nil, fmt.Errorf("config: parse: %w", err)
	}
	return decode(v, keyErrs, overrides)
}

// newViper returns a viper instance (never the global one) with a default
// for every key, so that environment overrides reach Unmarshal.
func newViper() *viper.Viper {
	v := viper.New()
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	for key, val := range flatten(Defaults()) {
		v.SetDefault(key, val)
	}
	return v
}

func decode(v *viper.Viper, keyErrs []error, overrides map[string]any) (cfg *Config, err error) {
	for k, val := range overrides {
		v.Set(k, val)
	}
	// mapstructure can panic on some malformed documents (for example a
	// scalar where a map is expected deep in the tree); report it as an error.
	defer func() {
		if r := recover(); r != nil {
			cfg, err = nil, fmt.Errorf("config: decode: %v", r)
		}
	}()
	cfg = &Config{}
	// With unknown keys already named, decode the rest leniently so that
	// validation can still report every other problem at once. A value
	// that cannot be decoded (a duration "abc", an int "x") is named by its
	// key; the rest of the tree is still decoded and validated.
	envErrs, badKeys := unknownEnv(os.Environ())
	errs := append(keyErrs, envErrs...)
	if err := v.Unmarshal(cfg, func(dc *mapstructure.DecoderConfig) {
		dc.ErrorUnused = len(keyErrs) == 0
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(
			durationNeedsUnit,
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
		)
	}); err != nil {
		named, keys := decodeErrors(err, v)
		errs = append(errs, named...)
		badKeys = append(badKeys, keys...)
	}
	if len(cfg.Admission.TrustedProxies) == 0 {
		cfg.Admission.TrustedProxies = nil // as in Defaults, so configs compare equal
	}
	for name, rc := range cfg.Routes {
		if len(rc.ForwardPaths) == 0 && rc.ForwardPaths != nil {
			rc.ForwardPaths = nil
			cfg.Routes[name] = rc
		}
	}
	for _, e := range SplitErrors(cfg.Validate()) {
		// A key that failed to decode holds its zero value; its validation
		// error would only repeat the decode error in a confusing form.
		key, _, _ := strings.Cut(e.Error(), ":")
		if !slices.ContainsFunc(badKeys, func(k string) bool { return sameBranch(k, key) }) {
			errs = append(errs, e)
		}
	}
	return cfg, errors.Join(errs...)
}

// nonKeyEnv are the SIDECAR_* variables that are not config keys yet
// are not mistakes.
var nonKeyEnv = map[string]bool{
	// The config file's path, read by cmd/sidecar/main.go.
	"SIDECAR_CONFIG": true,
	// Host ports that docker-compose.real-agentkit.yml interpolates (see
	// docs/deploy.md); the container never sees them, a shell may.
	"SIDECAR_HOST_PORT":       true,
	"SIDECAR_ADMIN_HOST_PORT": true,
}

// isServiceLinkEnv reports whether name is one of the variables
// Kubernetes puts in every pod for a Service whose name starts with
// "sidecar" (for "sidecar": SIDECAR_PORT, SIDECAR_SERVICE_HOST,
// SIDECAR_PORT_8080_TCP_ADDR, ...; for "sidecar-metrics":
// SIDECAR_METRICS_SERVICE_HOST, ...): they are not the operator's, so they
// are no error.
func isServiceLinkEnv(name string) bool {
	rest, ok := strings.CutPrefix(name, EnvPrefix+"_")
	if !ok {
		return false
	}
	parts := strings.Split(rest, "_")
	for i := range parts { // parts[:i] is the rest of the Service's name
		if serviceLinkSuffix(parts[i:]) {
			return true
		}
	}
	return false
}

// serviceLinkSuffix reports whether parts is the part of a Kubernetes
// service-link variable after the Service's name: SERVICE_HOST,
// SERVICE_PORT[_<port name>], PORT, or PORT_<number>_<TCP|UDP|SCTP>[_PROTO|_PORT|_ADDR].
func serviceLinkSuffix(parts []string) bool {
	switch {
	case len(parts) == 2 && parts[0] == "SERVICE" && parts[1] == "HOST":
		return true
	case len(parts) >= 2 && parts[0] == "SERVICE" && parts[1] == "PORT":
		return true
	case len(parts) == 1 && parts[0] == "PORT":
		return true
	}
	if len(parts) < 3 || len(parts) > 4 || parts[0] != "PORT" {
		return false
	}
	if _, err := strconv.ParseUint(parts[1], 10, 16); err != nil {
		return false
	}
	if parts[2] != "TCP" && parts[2] != "UDP" && parts[2] != "SCTP" {
		return false
	}
	return len(parts) == 3 || parts[3] == "PROTO" || parts[3] == "PORT" || parts[3] == "ADDR"
}

// unknownEnv names every variable of environ (KEY=value entries) that
// looks like an override, SIDECAR_... in any case, but maps to no config
// key: a misspelled override would otherwise be ignored in silence (a
// webhook_auth.mode=required that never applies). Each error suggests the
// nearest real variable when one is close. A variable that names a block
// ("SIDECAR_ROUTES_NOTIFY_RETRY") is unknown too, but viper lets it shadow
// the whole block; its key is returned in shadowed, so that validation
// errors of the block's zeroed keys do not bury the real mistake.
func unknownEnv(environ []string) (errs []error, shadowed []string) {
	known := map[string]bool{}
	blocks := map[string]string{} // variable → block key
	walk(reflect.ValueOf(Defaults()).Elem(), func(n node) {
		if n.Leaf {
			known[EnvName(n.Key)] = true
		} else {
			blocks[EnvName(n.Key)] = n.Key
		}
	})
	var names []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(strings.ToUpper(name), EnvPrefix+"_") || known[name] || nonKeyEnv[name] || isServiceLinkEnv(name) {
			continue
		}
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range slices.Compact(names) {
		msg := name + ": unknown environment variable: no config key has this name"
		if block, ok := blocks[name]; ok {
			msg = name + ": unknown environment variable: " + block + " is a block, not a key; set its keys (e.g. " + EnvName(block) + "_...)"
			shadowed = append(shadowed, block)
		} else if near := nearestEnv(name, known); near != "" {
			msg += "; did you mean " + near + "?"
		}
		errs = append(errs, errors.New(msg))
	}
	return errs, shadowed
}

// nearestEnv returns the known variable closest to name (edit distance,
// case and underscores ignored first), or "" when none is close.
func nearestEnv(name string, known map[string]bool) string {
	squash := func(s string) string { return strings.ReplaceAll(strings.ToUpper(s), "_", "") }
	best, bestD := "", 4 // suggest only within 3 edits
	for k := range known {
		d := editDistance(squash(name), squash(k))
		if d == 0 {
			d = editDistance(strings.ToUpper(name), k) - 100 // spelled the same but for case and underscores: best
		}
		if d < bestD || (d == bestD && k < best) {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b, bytewise.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// sameBranch reports whether one dotted key is the other or lies under it.
func sameBranch(a, b string) bool {
	return a == b || strings.HasPrefix(a, b+".") || strings.HasPrefix(b, a+".")
}

// decodeErrors turns mapstructure's decode errors into errors that name
// their dotted key ("routes.notify.retry.attempts: cannot parse ...", the
// value when it is a string, and the environment variable when it holds
// the value), and returns the keys.
func decodeErrors(err error, v *viper.Viper) (named []error, keys []string) {
	for _, e := range SplitErrors(err) {
		var de *mapstructure.DecodeError
		if !errors.As(e, &de) {
			named = append(named, fmt.Errorf("config: %w", e))
			continue
		}
		key := strings.NewReplacer("[", ".", "]", "").Replace(de.Name())
		msg := de.Unwrap().Error()
		var nu *noUnitError
		if raw := v.Get(key); raw != nil && !errors.As(de.Unwrap(), &nu) {
			if _, scalar := raw.(string); scalar {
				msg += fmt.Sprintf(", got %q", raw)
			}
		}
		if env := EnvName(key); os.Getenv(env) != "" {
			msg += " (from " + env + ")"
		}
		named = append(named, fmt.Errorf("%s: %s", key, msg))
		keys = append(keys, key)
	}
	return named, keys
}

// noUnitError is a duration given as a bare number ("2", 2, 2.5): Go
// would read it as nanoseconds, which is never what an operator means.
type noUnitError struct{ value string }

func (e *noUnitError) Error() string {
	return strconv.Quote(e.value) + " has no unit; write e.g. 2s or 250ms"
}

// durationNeedsUnit is a decode hook that refuses a duration written as a
// number without a unit, in the file (YAML int or float) or in the
// environment (a string of digits). A bare 0 is allowed: zero is the same
// in every unit, and keys where zero means "off" or "none" say so in
// configs/sidecar.yaml.
func durationNeedsUnit(from, to reflect.Type, data any) (any, error) {
	if to != durationType || from == durationType {
		return data, nil
	}
	var f float64
	switch from.Kind() {
	case reflect.String:
		n, err := strconv.ParseFloat(strings.TrimSpace(data.(string)), 64)
		if err != nil {
			return data, nil // a duration string, or an error for the next hook
		}
		f = n
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		f = float64(reflect.ValueOf(data).Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		f = float64(reflect.ValueOf(data).Uint())
	case reflect.Float32, reflect.Float64:
		f = reflect.ValueOf(data).Float()
	default:
		return data, nil
	}
	if f == 0 {
		return time.Duration(0), nil
	}
	return nil, &noUnitError{value: fmt.Sprint(data)}
}

// SplitErrors unpacks joined errors (errors.Join, mapstructure's list) into
// their parts, recursively; a nil error gives none. The command prints
// Load's error this way, one problem per line.
func SplitErrors(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, SplitErrors(e)...)
		}
		return out
	}
	return []error{err}
}

// unknownKeys walks a parsed document and names every key that is not
// part of the tree (viper ignores an unknown key that holds an empty map,
// and mapstructure's messages do not use dotted keys). Unknown route names
// are left to Validate.
func unknownKeys(raw map[string]any) []error {
	known := map[string]bool{}
	walk(reflect.ValueOf(Defaults()).Elem(), func(n node) { known[n.Key] = true })
	var errs []error
	var walkDoc func(prefix string, m map[string]any)
	walkDoc = func(prefix string, m map[string]any) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			key := strings.ToLower(k)
			if prefix != "" {
				key = prefix + "." + key
			}
			if strings.HasPrefix(key, "routes.") && strings.Count(key, ".") == 1 && !known[key] {
				continue // an unknown route name; Validate reports it
			}
			if !known[key] {
				errs = append(errs, fmt.Errorf("%s: unknown key", key))
				continue
			}
			if sub, ok := m[k].(map[string]any); ok {
				walkDoc(key, sub)
			}
		}
	}
	walkDoc("", raw)
	return errs
}

// EnvName is the environment variable that overrides key.
func EnvName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}
