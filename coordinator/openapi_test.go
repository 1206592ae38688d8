package coordinator_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/tabgrid/tabgrid/coordinator"
	"github.com/tabgrid/tabgrid/store"
	"github.com/tabgrid/tabgrid/tasks"
)

// The OpenAPI document is written by hand; these tests keep it honest
// against the server: the same routes, the same JSON fields as the Go
// types the API encodes, and no dangling references.

type openAPIDoc struct {
	OpenAPI    string                                `json:"openapi"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas   map[string]json.RawMessage `json:"schemas"`
		Responses map[string]json.RawMessage `json:"responses"`
	} `json:"components"`
}

type openAPIOperation struct {
	OperationID string                     `json:"operationId"`
	Parameters  []openAPIParameter         `json:"parameters"`
	Responses   map[string]json.RawMessage `json:"responses"`
}

type openAPIParameter struct {
	Name string `json:"name"`
	In   string `json:"in"`
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func loadOpenAPI(t *testing.T) openAPIDoc {
	t.Helper()
	var doc openAPIDoc
	dec := json.NewDecoder(bytes.NewReader(coordinator.OpenAPI))
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q, want 3.x", doc.OpenAPI)
	}
	return doc
}

// newRoutesServer builds a server without listening: enough to list its
// routes.
func newRoutesServer(t *testing.T) *coordinator.Server {
	t.Helper()
	cfg := coordinator.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.APITokens = []string{"openapi-test-token"}
	srv, err := coordinator.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

var echoParam = regexp.MustCompile(`:([A-Za-z_][A-Za-z0-9_]*)`)

// TestOpenAPIMatchesRoutes: every route the server registers is in the
// document and every operation of the document is a registered route.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	srv := newRoutesServer(t)

	registered := map[string]bool{}
	for _, r := range srv.Routes() {
		path := echoParam.ReplaceAllString(r.Path, "{$1}")
		registered[strings.ToLower(r.Method)+" "+path] = true
	}
	if len(registered) == 0 {
		t.Fatal("the server lists no routes")
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths {
		for key := range item {
			if slices.Contains(httpMethods, key) {
				documented[key+" "+path] = true
			}
		}
	}
	var missing, extra []string
	for r := range registered {
		if !documented[r] {
			missing = append(missing, r)
		}
	}
	for d := range documented {
		if !registered[d] {
			extra = append(extra, d)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("routes the server registers but openapi.json does not describe:\n  %s", strings.Join(missing, "\n  "))
	}
	if len(extra) > 0 {
		t.Errorf("operations in openapi.json the server does not register:\n  %s", strings.Join(extra, "\n  "))
	}
}

// TestOpenAPIOperations: each operation has a unique id, declares every
// path parameter of its path and answers with at least one response; and
// every $ref points at something that exists.
func TestOpenAPIOperations(t *testing.T) {
	doc := loadOpenAPI(t)
	ids := map[string]string{}
	for path, item := range doc.Paths {
		var shared []openAPIParameter
		if raw, ok := item["parameters"]; ok {
			if err := json.Unmarshal(raw, &shared); err != nil {
				t.Fatalf("%s parameters: %v", path, err)
			}
		}
		for method, raw := range item {
			if !slices.Contains(httpMethods, method) {
				continue
			}
			var op openAPIOperation
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			where := method + " " + path
			if op.OperationID == "" {
				t.Errorf("%s: no operationId", where)
			} else if prev, dup := ids[op.OperationID]; dup {
				t.Errorf("%s: operationId %q also used by %s", where, op.OperationID, prev)
			}
			ids[op.OperationID] = where
			if len(op.Responses) == 0 {
				t.Errorf("%s: no responses", where)
			}
			for _, m := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(path, -1) {
				declared := slices.ContainsFunc(append(shared, op.Parameters...), func(p openAPIParameter) bool {
					return p.In == "path" && p.Name == m[1]
				})
				if !declared {
					t.Errorf("%s: path parameter %q is not declared", where, m[1])
				}
			}
		}
	}

	var all any
	if err := json.Unmarshal(coordinator.OpenAPI, &all); err != nil {
		t.Fatal(err)
	}
	refs := 0
	walkJSON(all, func(key string, v any) {
		if key != "$ref" {
			return
		}
		refs++
		ref, _ := v.(string)
		name, ok := strings.CutPrefix(ref, "#/components/schemas/")
		if ok {
			if _, found := doc.Components.Schemas[name]; !found {
				t.Errorf("dangling $ref %q", ref)
			}
			return
		}
		name, ok = strings.CutPrefix(ref, "#/components/responses/")
		if _, found := doc.Components.Responses[name]; !ok || !found {
			t.Errorf("dangling $ref %q", ref)
		}
	})
	if refs == 0 {
		t.Error("no $ref at all: the walk is broken")
	}
}

func walkJSON(v any, visit func(key string, v any)) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			visit(k, e)
			walkJSON(e, visit)
		}
	case []any:
		for _, e := range x {
			walkJSON(e, visit)
		}
	}
}

// jsonFields lists the JSON names a Go struct encodes.
func jsonFields(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// TestOpenAPISchemasMatchTypes: the objects the document describes have
// exactly the fields the Go types encode, so a field added to the API
// without documentation (or documented and never sent) fails here.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	doc := loadOpenAPI(t)
	for _, tc := range []struct {
		schema string
		typ    any
	}{
		{"Job", tasks.Job{}},
		{"Task", tasks.Task{}},
		{"TaskCounts", tasks.Counts{}},
		{"JobSpec", tasks.Spec{}},
		{"Worker", store.WorkerInfo{}},
		{"Stats", coordinator.Stats{}},
	} {
		t.Run(tc.schema, func(t *testing.T) {
			raw, ok := doc.Components.Schemas[tc.schema]
			if !ok {
				t.Fatalf("no schema %s", tc.schema)
			}
			var s struct {
				Properties map[string]json.RawMessage `json:"properties"`
				Required   []string                   `json:"required"`
			}
			if err := json.Unmarshal(raw, &s); err != nil {
				t.Fatal(err)
			}
			var documented []string
			for p := range s.Properties {
				documented = append(documented, p)
			}
			sort.Strings(documented)
			want := jsonFields(reflect.TypeOf(tc.typ))
			if !slices.Equal(documented, want) {
				t.Errorf("schema %s has properties %v; the Go type encodes %v", tc.schema, documented, want)
			}
			for _, r := range s.Required {
				if _, ok := s.Properties[r]; !ok {
					t.Errorf("schema %s requires %q, which is not a property", tc.schema, r)
				}
			}
		})
	}
}

// TestOpenAPIServed: the server hands out the document at
// /api/v1/openapi.json, byte for byte.
func TestOpenAPIServed(t *testing.T) {
	srv := newRoutesServer(t)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(srv.URL() + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !bytes.Equal(b, coordinator.OpenAPI) {
		t.Error("the served document differs from the embedded one")
	}
}

// TestOpenAPIExamplesAreAccepted: the input examples the document shows
// are ones the kinds accept, so a reader who copies one gets a job.
func TestOpenAPIExamplesAreAccepted(t *testing.T) {
	doc := loadOpenAPI(t)
	for kind, schema := range map[string]string{
		"primes": "PrimesInput", "pi": "PiInput", "mandelbrot": "MandelbrotInput", "js": "JSInput", "sleep": "SleepInput",
	} {
		t.Run(kind, func(t *testing.T) {
			var s struct {
				Example json.RawMessage `json:"example"`
			}
			if err := json.Unmarshal(doc.Components.Schemas[schema], &s); err != nil || len(s.Example) == 0 {
				t.Fatalf("schema %s has no example (%v)", schema, err)
			}
			spec, err := json.Marshal(map[string]any{"kind": kind, "input": s.Example})
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := tasks.ParseSpec(spec, tasks.DefaultLimits())
			if err != nil {
				t.Fatalf("example spec %s: %v", spec, err)
			}
			if _, err := parsed.SplitTasks(tasks.DefaultLimits()); err != nil {
				t.Fatalf("example input %s: %v", s.Example, err)
			}
		})
	}
}
