package configs

import (
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// composePath is the compose file, relative to configs/.
const composePath = "../docker-compose.real-agentkit.yml"

// composeFile is the part of a compose file the wiring tests read.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Command     []string          `yaml:"command"`
	Ports       []string          `yaml:"ports"`
	Expose      []string          `yaml:"expose"`
	Environment map[string]string `yaml:"environment"`
	EnvFile     any               `yaml:"env_file"`
	Volumes     []string          `yaml:"volumes"`
	Healthcheck *struct {
		Test     []string `yaml:"test"`
		Interval string   `yaml:"interval"`
	} `yaml:"healthcheck"`
	DependsOn map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
}

// composeVar matches ${NAME}, ${NAME:-default} and the other forms.
var composeVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}`)

// expandDefaults replaces every ${NAME:-default} with its default, which is
// what compose does on a machine with no .env file and a clean environment.
func expandDefaults(s string) string {
	return composeVar.ReplaceAllStringFunc(s, func(m string) string {
		return strings.TrimPrefix(composeVar.FindStringSubmatch(m)[2], ":-")
	})
}

// loadCompose parses the compose file with every variable at its default.
func loadCompose(t *testing.T) composeFile {
	t.Helper()
	var c composeFile
	readYAML(t, composePath, &c)
	for name, s := range c.Services {
		s.Image = expandDefaults(s.Image)
		for i := range s.Ports {
			s.Ports[i] = expandDefaults(s.Ports[i])
		}
		for k, v := range s.Environment {
			s.Environment[k] = expandDefaults(v)
		}
		c.Services[name] = s
	}
	return c
}

// service returns the named service or fails t.
func (c composeFile) service(t *testing.T, name string) composeService {
	t.Helper()
	s, ok := c.Services[name]
	if !ok {
		t.Fatalf("compose has no service %q", name)
	}
	return s
}

// publishedPort returns the container port published on host port host.
func (s composeService) publishedPort(host string) (string, bool) {
	for _, p := range s.Ports {
		parts := strings.Split(p, ":")
		if len(parts) >= 2 && parts[len(parts)-2] == host {
			return parts[len(parts)-1], true
		}
	}
	return "", false
}

// containerPorts returns the ports the service listens on inside the
// network, as its ports and expose entries name them.
func (s composeService) containerPorts() []string {
	ports := slices.Clone(s.Expose)
	for _, p := range s.Ports {
		ports = append(ports, p[strings.LastIndexByte(p, ':')+1:])
	}
	return ports
}

// hostPath maps a path inside the container to the repository path of the
// bind mount that holds it, relative to configs/.
func (s composeService) hostPath(inContainer string) (string, bool) {
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || !strings.HasPrefix(parts[0], ".") {
			continue
		}
		src, dst := parts[0], parts[1]
		if inContainer == dst || strings.HasPrefix(inContainer, dst+"/") {
			return filepath.Join("..", src, strings.TrimPrefix(inContainer, dst)), true
		}
	}
	return "", false
}

// portOf returns the port of a listen address (":8080", "0.0.0.0:9901") or URL.
func portOf(t *testing.T, addr string) string {
	t.Helper()
	if u, err := url.Parse(addr); err == nil && u.Scheme != "" && u.Host != "" {
		return u.Port()
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return port
}

func TestComposeNeedsNoEnvFile(t *testing.T) {
	raw := readFile(t, composePath)
	for _, m := range composeVar.FindAllStringSubmatch(raw, -1) {
		if !strings.HasPrefix(m[2], ":-") || len(m[2]) == 2 {
			t.Errorf("variable %s: got %q, want a default (${%s:-value})", m[1], m[0], m[1])
		}
	}
	for name, s := range loadCompose(t).Services {
		if s.EnvFile != nil {
			t.Errorf("service %s: got env_file %v, want none (no .env in the repository)", name, s.EnvFile)
		}
	}
}

func TestComposeServices(t *testing.T) {
	c := loadCompose(t)
	for _, name := range []string{"redis", "opscore", "sidecar", "agentkit", "prometheus", "grafana"} {
		c.service(t, name)
	}
	if p := c.service(t, "opscore").Ports; len(p) > 0 {
		t.Errorf("opscore: got ports %v, want none published (clients go through the sidecar)", p)
	}
	if p := c.service(t, "redis").Ports; len(p) > 0 {
		t.Errorf("redis: got ports %v, want none published", p)
	}
	if _, ok := c.service(t, "sidecar").publishedPort("8000"); !ok {
		t.Errorf("sidecar: got ports %v, want host port 8000 published", c.service(t, "sidecar").Ports)
	}
	if b, ok := c.service(t, "agentkit").Build.(string); !ok || b != "../agentkit" {
		t.Errorf("agentkit: got build %v, want ../agentkit", c.service(t, "agentkit").Build)
	}
	if !slices.Contains(c.service(t, "prometheus").Command, "--enable-feature=exemplar-storage") {
		t.Errorf("prometheus: got command %v, want exemplar storage enabled", c.service(t, "prometheus").Command)
	}
	g := c.service(t, "grafana").Environment
	if g["GF_AUTH_ANONYMOUS_ENABLED"] != "true" || g["GF_AUTH_ANONYMOUS_ORG_ROLE"] != "Viewer" {
		t.Errorf("grafana: got anonymous %q role %q, want true and Viewer", g["GF_AUTH_ANONYMOUS_ENABLED"], g["GF_AUTH_ANONYMOUS_ORG_ROLE"])
	}
}

// noHealthcheck lists the services that need none, and why.
var noHealthcheck = map[string]string{
	"jaeger": "its image has no probe tool and nothing waits for it (spans are exported in the background)",
}

func TestComposeHealthchecksAndStartOrder(t *testing.T) {
	c := loadCompose(t)
	for name, s := range c.Services {
		if s.Healthcheck == nil {
			if _, ok := noHealthcheck[name]; !ok {
				t.Errorf("service %s: got no healthcheck, want one", name)
			}
		} else {
			d, err := time.ParseDuration(s.Healthcheck.Interval)
			if err != nil || d > 5*time.Second {
				t.Errorf("service %s: got healthcheck interval %q, want at most 5s", name, s.Healthcheck.Interval)
			}
			if len(s.Healthcheck.Test) < 2 || (s.Healthcheck.Test[0] != "CMD" && s.Healthcheck.Test[0] != "CMD-SHELL") {
				t.Errorf("service %s: got healthcheck test %v, want [CMD ...]", name, s.Healthcheck.Test)
			}
		}
		for dep, d := range s.DependsOn {
			if d.Condition != "service_healthy" {
				t.Errorf("service %s depends on %s: got condition %q, want service_healthy", name, dep, d.Condition)
			}
			if c.Services[dep].Healthcheck == nil {
				t.Errorf("service %s depends on %s, which has no healthcheck", name, dep)
			}
		}
	}
}

func TestComposeMountsExist(t *testing.T) {
	c := loadCompose(t)
	for name, s := range c.Services {
		for _, v := range s.Volumes {
			src := strings.Split(v, ":")[0]
			if !strings.HasPrefix(src, ".") || strings.HasPrefix(src, "../") {
				continue // a named volume
			}
			if _, err := os.Stat(filepath.Join("..", src)); err != nil {
				t.Errorf("service %s mounts %s: %v", name, src, err)
			}
		}
	}
	// Every file a service is told to read inside its container is in a mount.
	files := []struct{ service, flag string }{
		{"sidecar", "--config"},
		{"prometheus", "--config.file"},
	}
	for _, f := range files {
		s := c.service(t, f.service)
		p := flagValue(s.Command, f.flag)
		if p == "" {
			t.Errorf("service %s: got command %v, want %s", f.service, s.Command, f.flag)
			continue
		}
		checkMounted(t, s, f.service, p)
	}
	g := c.service(t, "grafana")
	checkMounted(t, g, "grafana", g.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
	var prov struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, "grafana/provisioning/dashboards/dashboards.yml", &prov)
	for _, p := range prov.Providers {
		checkMounted(t, g, "grafana", path.Join(p.Options.Path, "opscore-sidecar.json"))
	}
	checkMounted(t, g, "grafana", "/etc/grafana/provisioning/datasources/datasources.yml")
}

// flagValue returns the value of --flag=value or --flag value in args.
func flagValue(args []string, flag string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// checkMounted fails t unless inContainer is a file of the repository
// mounted into service s.
func checkMounted(t *testing.T, s composeService, service, inContainer string) {
	t.Helper()
	p, ok := s.hostPath(inContainer)
	if !ok {
		t.Errorf("service %s reads %s, which no bind mount provides", service, inContainer)
		return
	}
	if _, err := os.Stat(p); err != nil {
		t.Errorf("service %s reads %s (%s in the repository): %v", service, inContainer, p, err)
	}
}
