package e2e

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tabgrid/tabgrid/webclient"
)

// TestComputeWorkerSandbox runs the compute worker exactly as the page
// does and checks that submitted code cannot reach the network, even its
// own origin: the worker's Content-Security-Policy forbids connections.
func TestComputeWorkerSandbox(t *testing.T) {
	srv := httptest.NewServer(webclient.Handler())
	t.Cleanup(srv.Close)
	b := startBrowser(t, browserOptions{})
	tab := b.open("page", srv.URL+"/")

	run := func(kind string, input string) map[string]any {
		t.Helper()
		var out map[string]any
		err := tab.eval(`new Promise((resolve) => {
			const w = new Worker("/volunteer/compute-worker.js", {type: "module"});
			w.onmessage = (e) => { w.terminate(); resolve(e.data); };
			w.onerror = (e) => resolve({error: "worker error: " + e.message});
			w.postMessage({id: 1, kind: `+"`"+kind+"`"+`, input: `+input+`});
		})`, &out)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	out := run("js", `{code: "async (x) => { const r = await fetch('/'); return r.status }", items: [1]}`)
	if e, _ := out["error"].(string); !strings.Contains(e, "Failed to fetch") {
		t.Fatalf("fetch from the sandbox: got %v, want a task error naming the fetch failure", out)
	}
	out = run("js", `{code: "(x) => x * x", items: [1, 2, 3]}`)
	if out["json"] != `{"outputs":[1,4,9]}` {
		t.Fatalf("js kind: got %v", out)
	}
	// The page itself may fetch (it does, for job names): the sandbox
	// is the worker, not the origin.
	var status int
	if err := tab.eval(`fetch("/").then(r => r.status)`, &status); err != nil || status != 200 {
		t.Fatalf("page fetch: %d %v", status, err)
	}
	tab.waitText(t, "#state", 10*time.Second, "idle", func(s string) bool { return s == "stopped" })
}
