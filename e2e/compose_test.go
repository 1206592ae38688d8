package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/redis/go-redis/v9"

	"github.com/tabgrid/tabgrid/store/redistest"
)

// No Docker engine runs where the tests run, so these tests check the
// deployment files with the parser docker compose itself uses, and run
// what can be run here for real: the Redis command line on a real
// redis-server, the coordinator's flags against the real binary.

const composeFile = "../docker-compose.yml"

// officialImages are the Docker Official Images a service may use instead
// of building the repository's Dockerfile.
var officialImages = map[string]string{"redis": "store", "nginx": "proxy", "caddy": "proxy"}

func loadCompose(t *testing.T, path string) (*types.Project, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts, err := cli.NewProjectOptions([]string{path}, cli.WithOsEnv)
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(ctx)
}

func mustLoadCompose(t *testing.T) *types.Project {
	t.Helper()
	p, err := loadCompose(t, composeFile)
	if err != nil {
		t.Fatalf("load %s: %v", composeFile, err)
	}
	return p
}

// imageName splits "docker.io/library/redis:7.4" into its repository
// ("redis") and tag ("7.4"), and reports whether it is an official image
// (no user namespace, Docker Hub).
func imageName(ref string) (repo, tag string, official bool) {
	name := ref
	if i := strings.Index(name, "@"); i >= 0 {
		name = name[:i]
	}
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name, tag = name[:i], ref[i+1:]
	}
	name = strings.TrimPrefix(name, "docker.io/")
	name = strings.TrimPrefix(name, "library/")
	return name, tag, !strings.Contains(name, "/")
}

func TestImageName(t *testing.T) {
	for _, tc := range []struct {
		ref, repo, tag string
		official       bool
	}{
		{"redis:7.4", "redis", "7.4", true},
		{"docker.io/library/nginx:1.28", "nginx", "1.28", true},
		{"caddy", "caddy", "", true},
		{"bitnami/redis:7", "bitnami/redis", "7", false},
		{"ghcr.io/x/nginx:1", "ghcr.io/x/nginx", "1", false},
		{"localhost:5000/redis", "localhost:5000/redis", "", false},
	} {
		repo, tag, official := imageName(tc.ref)
		if repo != tc.repo || tag != tc.tag || official != tc.official {
			t.Errorf("imageName(%q) = %q, %q, %v; want %q, %q, %v", tc.ref, repo, tag, official, tc.repo, tc.tag, tc.official)
		}
	}
}

// TestComposeServices: every service is built from the repository's
// Dockerfile or runs a pinned official image; every one has a healthcheck;
// there are at least two coordinators, each pointed at the Redis service.
func TestComposeServices(t *testing.T) {
	t.Setenv("TABGRID_API_TOKENS", "")
	p := mustLoadCompose(t)
	repoRoot, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	var coordinators, stores, proxies []string
	for name, svc := range p.Services {
		t.Run(name, func(t *testing.T) {
			if svc.HealthCheck == nil || svc.HealthCheck.Disable || len(svc.HealthCheck.Test) == 0 {
				t.Errorf("no healthcheck")
			}
			if svc.Build != nil {
				if got, _ := filepath.Abs(svc.Build.Context); got != repoRoot {
					t.Errorf("build context %s, want the repository root %s", svc.Build.Context, repoRoot)
				}
				if df := svc.Build.Dockerfile; df != "Dockerfile" && df != filepath.Join(repoRoot, "Dockerfile") {
					t.Errorf("dockerfile %q, want the repository's Dockerfile", df)
				}
				coordinators = append(coordinators, name)
				checkCoordinator(t, svc)
				return
			}
			repo, tag, official := imageName(svc.Image)
			role, known := officialImages[repo]
			if !official || !known {
				t.Fatalf("image %q is neither built from the Dockerfile nor an official redis, nginx or caddy image", svc.Image)
			}
			if tag == "" || tag == "latest" {
				t.Errorf("image %q is not pinned to a version", svc.Image)
			}
			if role == "store" {
				stores = append(stores, name)
				checkRedisCommand(t, svc.Command)
			} else {
				proxies = append(proxies, name)
				if !strings.Contains(strings.Join(svc.HealthCheck.Test, " "), "/healthz") {
					t.Errorf("proxy healthcheck %q does not probe /healthz", svc.HealthCheck.Test)
				}
				if len(svc.Ports) == 0 {
					t.Errorf("the proxy publishes no port")
				}
			}
		})
	}
	if len(coordinators) < 2 {
		t.Errorf("coordinators %v: want at least two built from the Dockerfile", coordinators)
	}
	if len(stores) != 1 || len(proxies) != 1 {
		t.Errorf("stores %v, proxies %v: want one of each", stores, proxies)
	}
}

func checkCoordinator(t *testing.T, svc types.ServiceConfig) {
	t.Helper()
	cmd := []string(svc.Command)
	if len(cmd) == 0 || cmd[0] != "serve" {
		t.Fatalf("command %q does not start with serve", cmd)
	}
	if v := flagValue(cmd, "--redis"); !strings.HasPrefix(v, "redis://redis:6379") {
		t.Errorf("--redis %q, want redis://redis:6379", v)
	}
	if v := flagValue(cmd, "--addr"); v != ":8080" {
		t.Errorf("--addr %q, want :8080", v)
	}
	tok := svc.Environment["TABGRID_API_TOKENS"]
	// Config.Validate refuses tokens shorter than 8 characters.
	if tok == nil || len(*tok) < 8 {
		t.Errorf("TABGRID_API_TOKENS has no usable default when unset: %v", tok)
	}
	if !strings.Contains(strings.Join(svc.HealthCheck.Test, " "), "/healthz") {
		t.Errorf("healthcheck %q does not probe /healthz", svc.HealthCheck.Test)
	}
	if d, ok := svc.DependsOn["redis"]; !ok || d.Condition != types.ServiceConditionHealthy {
		t.Errorf("does not wait for a healthy redis: %+v", svc.DependsOn)
	}
	if svc.StopGracePeriod == nil || time.Duration(*svc.StopGracePeriod) <= 10*time.Second {
		t.Errorf("stop_grace_period %v is not longer than the 10s shutdown timeout", svc.StopGracePeriod)
	}
}

func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

func checkRedisCommand(t *testing.T, cmd types.ShellCommand) {
	t.Helper()
	args := []string(cmd)
	if len(args) == 0 || args[0] != "redis-server" {
		t.Fatalf("redis command %q does not run redis-server", args)
	}
	for flag, want := range map[string]string{"--appendonly": "yes", "--appendfsync": "everysec", "--maxmemory-policy": "noeviction"} {
		if got := flagValue(args, flag); got != want {
			t.Errorf("redis %s %q, want %q", flag, got, want)
		}
	}
}

// TestComposeTokenFromEnv: the token a user exports reaches the
// coordinators.
func TestComposeTokenFromEnv(t *testing.T) {
	t.Setenv("TABGRID_API_TOKENS", "operator-token-123,second-token-456")
	p := mustLoadCompose(t)
	n := 0
	for name, svc := range p.Services {
		if svc.Build == nil {
			continue
		}
		n++
		if tok := svc.Environment["TABGRID_API_TOKENS"]; tok == nil || *tok != "operator-token-123,second-token-456" {
			t.Errorf("%s: TABGRID_API_TOKENS = %v, want the exported value", name, tok)
		}
	}
	if n == 0 {
		t.Fatal("no coordinator service")
	}
}

// TestComposeRejectsMisspeltKey shows the loader validates the schema, so
// TestComposeServices passing means the file is one docker compose takes.
func TestComposeRejectsMisspeltKey(t *testing.T) {
	b, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(b), "healthcheck:", "healthchek:", 1)
	if bad == string(b) {
		t.Fatal("no healthcheck key to misspell")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "docker-compose.yml")
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadCompose(t, path); err == nil || !strings.Contains(err.Error(), "healthchek") {
		t.Fatalf("a misspelt key loaded without the error naming it: %v", err)
	}
}

// TestComposeRedisCommandRuns starts a real redis-server with the
// compose file's arguments and reads the settings back.
func TestComposeRedisCommandRuns(t *testing.T) {
	p := mustLoadCompose(t)
	svc, ok := p.Services["redis"]
	if !ok {
		t.Fatal("no redis service")
	}
	srv := redistest.Start(t, redistest.WithArgs([]string(svc.Command)[1:]...))
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for key, want := range map[string]string{"appendonly": "yes", "appendfsync": "everysec", "maxmemory-policy": "noeviction"} {
		got, err := rdb.ConfigGet(ctx, key).Result()
		if err != nil {
			t.Fatalf("CONFIG GET %s: %v", key, err)
		}
		if got[key] != want {
			t.Errorf("running redis has %s = %q, want %q", key, got[key], want)
		}
	}
}

// TestComposeCoordinatorFlagsExist runs the real binary's `serve -h` and
// checks that every flag the compose file passes is one it knows, so a
// renamed flag breaks this test rather than the deployment.
func TestComposeCoordinatorFlagsExist(t *testing.T) {
	p := mustLoadCompose(t)
	out, _ := exec.Command(tabgridBinary(t), "serve", "-h").CombinedOutput()
	known := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
		known[m[1]] = true
	}
	if len(known) == 0 {
		t.Fatalf("serve -h listed no flags:\n%s", out)
	}
	for name, svc := range p.Services {
		if svc.Build == nil {
			continue
		}
		for _, a := range svc.Command[1:] {
			if f, ok := strings.CutPrefix(a, "--"); ok {
				f, _, _ = strings.Cut(f, "=")
				if !known[f] {
					t.Errorf("%s: flag --%s is not a flag of tabgrid serve", name, f)
				}
			}
		}
		for env := range svc.Environment {
			if strings.HasPrefix(env, "TABGRID_") && !strings.Contains(string(out), env) {
				t.Errorf("%s: %s is not an environment variable tabgrid serve reads", name, env)
			}
		}
	}
}

// TestNginxConfig checks the proxy config the compose file mounts: it
// upgrades WebSockets, does not buffer server-sent events, holds requests
// longer than the longest ?wait=, and lists every coordinator.
func TestNginxConfig(t *testing.T) {
	p := mustLoadCompose(t)
	var conf string
	var coordinators []string
	for name, svc := range p.Services {
		if svc.Build != nil {
			coordinators = append(coordinators, name)
		}
		if repo, _, _ := imageName(svc.Image); repo != "nginx" {
			continue
		}
		for _, v := range svc.Volumes {
			if v.Target == "/etc/nginx/nginx.conf" {
				conf = v.Source
			}
		}
	}
	if conf == "" {
		t.Skip("the proxy is not nginx (caddy passes Upgrade headers by itself)")
	}
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatalf("read the mounted nginx config: %v", err)
	}
	directives := nginxDirectives(string(b))
	for _, want := range []string{
		"proxy_http_version 1.1",
		"proxy_set_header Upgrade $http_upgrade",
		"proxy_set_header Connection $connection_upgrade",
		"proxy_buffering off",
	} {
		if !slices.Contains(directives, want) {
			t.Errorf("nginx.conf lacks %q", want)
		}
	}
	if !regexp.MustCompile(`map \$http_upgrade \$connection_upgrade \{\s*default upgrade;`).Match(b) {
		t.Errorf("nginx.conf does not map $http_upgrade to Connection: upgrade")
	}
	for _, c := range coordinators {
		if !regexp.MustCompile(`(?m)^\s*server ` + regexp.QuoteMeta(c) + `:8080\b`).Match(b) {
			t.Errorf("upstream does not list %s:8080", c)
		}
	}
	// The default --max-wait is 5m; every read timeout must exceed it.
	for _, d := range directives {
		if v, ok := strings.CutPrefix(d, "proxy_read_timeout "); ok {
			if dur, err := time.ParseDuration(v); err != nil || dur <= 5*time.Minute {
				t.Errorf("proxy_read_timeout %s does not exceed the 5m max wait", v)
			}
		}
	}
}

// nginxDirectives returns every directive of an nginx config, comments
// stripped and whitespace collapsed, without its semicolon.
func nginxDirectives(conf string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(conf))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		for _, part := range strings.Split(line, ";") {
			part = strings.Join(strings.Fields(strings.Trim(part, "{} \t")), " ")
			if part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

// TestDockerfile checks the image recipe: a golang:1.26 build stage, a
// slim or distroless runtime stage, a non-root user, tabgrid as the
// entrypoint.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var froms []string
	var user, entrypoint string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			froms = append(froms, f[1])
		case "USER":
			user = f[1]
		case "ENTRYPOINT":
			entrypoint = strings.Join(f[1:], " ")
		}
	}
	if len(froms) < 2 {
		t.Fatalf("FROM lines %v: want a multi-stage build", froms)
	}
	if !strings.HasPrefix(froms[0], "golang:1.26") {
		t.Errorf("build stage %s, want golang:1.26", froms[0])
	}
	if rt := froms[len(froms)-1]; !strings.Contains(rt, "distroless") && !regexp.MustCompile(`^debian:[a-z]+-slim$`).MatchString(rt) {
		t.Errorf("runtime stage %s is neither distroless nor debian-slim", rt)
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "root" || u == "0" {
		t.Errorf("USER %q: the image must not run as root", user)
	}
	if !strings.Contains(entrypoint, "tabgrid") {
		t.Errorf("ENTRYPOINT %q does not run tabgrid", entrypoint)
	}
}

// TestDockerBuildContextBuilds copies the repository as docker build
// would send it (minus .dockerignore's patterns) and runs the
// Dockerfile's go build there, so an ignore pattern that drops a needed
// file fails here rather than in an image build.
func TestDockerBuildContextBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	ctxDir := t.TempDir()
	copied := 0
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if rel == "." {
			return nil
		}
		if dockerIgnored(patterns, rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		dst := filepath.Join(ctxDir, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		copied++
		return os.WriteFile(dst, data, 0o644)
	})
	if err != nil {
		t.Fatalf("copy the build context: %v", err)
	}
	for _, gone := range []string{".git", "e2e/compose_test.go", "coordinator/client/client_test.go"} {
		if _, err := os.Stat(filepath.Join(ctxDir, gone)); err == nil {
			t.Errorf("%s is in the build context; .dockerignore should drop it", gone)
		}
	}
	// The Dockerfile's build step, in the copied context.
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(t.TempDir(), "tabgrid"), "./cmd/tabgrid")
	cmd.Dir = ctxDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build in the docker build context (%d files): %v\n%s", copied, err, out)
	}
}

// dockerIgnored applies the subset of .dockerignore syntax the file uses:
// "**/" prefixes match at any depth, other patterns match from the root
// (a matching directory drops everything under it).
func dockerIgnored(patterns []string, rel string) bool {
	rel = filepath.ToSlash(rel)
	for _, p := range patterns {
		if sub, ok := strings.CutPrefix(p, "**/"); ok {
			if m, _ := filepath.Match(sub, filepath.Base(rel)); m {
				return true
			}
			continue
		}
		if m, _ := filepath.Match(p, rel); m {
			return true
		}
	}
	return false
}
