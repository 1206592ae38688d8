package e2e

// Helpers that drive real headless Chromium tabs with chromedp. Shared by
// the volunteer and dashboard tests: startBrowser starts one browser per
// test (fresh profile, loopback only, killed at cleanup) and
// browser.open opens a tab on a URL.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

const (
	chromiumPath = "/usr/bin/chromium"
	// browserStartTimeout is generous: a first start after install takes
	// about 10 s on the shared 2-core machines (TESTING.md).
	browserStartTimeout = 30 * time.Second
)

// requireChromium skips the test when Chromium is not installed, or fails
// it when TABGRID_REQUIRE_ALL=1 says every part must be there (CI).
func requireChromium(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("TABGRID_REQUIRE_ALL") == "1" {
			t.Fatalf("chromium is required (TABGRID_REQUIRE_ALL=1) but %s is missing: %v", chromiumPath, err)
		}
		t.Skipf("skipping: %s is missing (install the chromium package to run browser tests)", chromiumPath)
	}
}

// browser is one headless Chromium process owned by a test.
type browser struct {
	t       testing.TB
	ctx     context.Context // the browser's chromedp context
	cancel  context.CancelFunc
	dataDir string
	pid     int
	first   bool // the first tab is the one chromedp opened at start

	mu     sync.Mutex
	closed bool // stops page logs after the test ended
}

// browserOptions tune startBrowser.
type browserOptions struct {
	// Throttled keeps Chromium's throttling of background tabs' timers,
	// as a volunteer's browser would. Off by default: several tabs of
	// one test are all "background" but one.
	Throttled bool
}

// startBrowser starts headless Chromium with the flags of TESTING.md, a
// fresh profile and XDG_CONFIG_HOME under t.TempDir(), and only loopback
// name resolution. Cleanup closes it and kills any process left.
func startBrowser(t testing.TB, opts browserOptions) *browser {
	t.Helper()
	requireChromium(t)
	root := t.TempDir()
	dataDir := filepath.Join(root, "profile")
	for _, d := range []string{dataDir, filepath.Join(root, "config"), filepath.Join(root, "cache"), filepath.Join(root, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	flags := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// Without it Chromium looks up Google's hosts through the
		// machine's resolver; only loopback traffic is allowed here.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"),
		chromedp.WindowSize(1000, 900),
		chromedp.UserDataDir(dataDir),
		chromedp.Env(
			"XDG_CONFIG_HOME="+filepath.Join(root, "config"),
			"XDG_CACHE_HOME="+filepath.Join(root, "cache"),
			"TMPDIR="+filepath.Join(root, "tmp"),
		),
	}
	if !opts.Throttled {
		flags = append(flags,
			chromedp.Flag("disable-background-timer-throttling", true),
			chromedp.Flag("disable-renderer-backgrounding", true),
			chromedp.Flag("disable-backgrounding-occluded-windows", true),
		)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), flags...)
	b := &browser{t: t, dataDir: dataDir, first: true}
	ctx, cancelCtx := chromedp.NewContext(allocCtx,
		// chromedp reports CDP events it cannot decode; they are noise
		// for these tests, and logging after the test ends would panic.
		chromedp.WithErrorf(func(string, ...any) {}),
		chromedp.WithLogf(func(string, ...any) {}),
	)
	b.ctx = ctx
	b.cancel = func() {
		cancelCtx()
		cancelAlloc() // waits for the browser process to exit
	}
	t.Cleanup(b.close)

	// The first Run starts the browser; its context must not carry a
	// timeout (that would end the browser), so bound it from outside.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start chromium: %v", err)
		}
	case <-time.After(browserStartTimeout):
		b.close()
		<-started
		t.Fatalf("chromium did not start within %s", browserStartTimeout)
	}
	if p := chromedp.FromContext(ctx).Browser.Process(); p != nil {
		b.pid = p.Pid
	}
	return b
}

// close ends the browser and kills whatever it left running. Safe twice.
func (b *browser) close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	b.mu.Unlock()
	b.cancel()
	if b.pid > 0 {
		_ = syscall.Kill(b.pid, syscall.SIGKILL) // ESRCH when it already exited
	}
	// Renderers, the zygote and the network service can outlive the main
	// process; they are ours if their command line names our profile.
	for _, pid := range pidsUsing(b.dataDir) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// pidsUsing lists the processes whose command line contains dir.
func pidsUsing(dir string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if strings.Contains(string(cmdline), dir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// logf logs for the test unless it has ended (page events arrive late).
func (b *browser) logf(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.t.Logf(format, args...)
	}
}

// browserTab is one tab of a browser.
type browserTab struct {
	b      *browser
	name   string
	ctx    context.Context
	cancel context.CancelFunc
}

// open opens a tab on url and waits for it to load. The page's console
// messages and uncaught exceptions go to the test log, prefixed by name.
func (b *browser) open(name, url string) *browserTab {
	b.t.Helper()
	ctx, cancel := b.ctx, context.CancelFunc(func() {})
	if b.first {
		b.first = false // reuse the blank tab chromedp opened at start
	} else {
		ctx, cancel = chromedp.NewContext(b.ctx)
	}
	tab := &browserTab{b: b, name: name, ctx: ctx, cancel: cancel}
	if err := chromedp.Listen(ctx, tab.logEvent); err != nil {
		b.t.Fatalf("%s: listen: %v", name, err)
	}
	navCtx, cancelNav := context.WithTimeout(ctx, 30*time.Second)
	defer cancelNav()
	if err := chromedp.Do(navCtx, chromedp.Navigate(url)); err != nil {
		b.t.Fatalf("%s: open %s: %v", name, url, err)
	}
	return tab
}

func (tab *browserTab) logEvent(ev any) {
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		var parts []string
		for _, a := range ev.Args {
			switch {
			case a.Description != "":
				parts = append(parts, a.Description)
			case len(a.Value) > 0:
				parts = append(parts, string(a.Value))
			default:
				parts = append(parts, string(a.Type))
			}
		}
		tab.b.logf("%s console.%s: %s", tab.name, ev.Type, strings.Join(parts, " "))
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		if d == nil {
			return
		}
		msg := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			msg = d.Exception.Description
		}
		tab.b.logf("%s uncaught: %s (%s:%d)", tab.name, msg, d.URL, d.LineNumber+1)
	}
}

// close closes the tab (not the browser). The first tab closes with the
// browser.
func (tab *browserTab) close() {
	tab.cancel()
}

// eval evaluates a JavaScript expression in the page and decodes its
// JSON value into out (which may be nil). Promises are awaited.
func (tab *browserTab) eval(expr string, out any) error {
	ctx, cancel := context.WithTimeout(tab.ctx, 20*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		return fmt.Errorf("%s: eval %q: %w", tab.name, expr, err)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s: eval %q: decode %s: %w", tab.name, expr, raw, err)
	}
	return nil
}

// text returns the textContent of the first element matching a CSS
// selector ("" when there is none).
func (tab *browserTab) text(selector string) (string, error) {
	var s string
	err := tab.eval(fmt.Sprintf(`document.querySelector(%q)?.textContent ?? ""`, selector), &s)
	return s, err
}

// waitText polls an element's text until ok accepts it or within runs
// out, and returns the last text. Polling, not sleeping: the machines are
// shared and slow.
func (tab *browserTab) waitText(t testing.TB, selector string, within time.Duration, what string, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(within)
	var last string
	var lastErr error
	for {
		s, err := tab.text(selector)
		last, lastErr = s, err
		if err == nil && ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s %s not reached within %s: last text %q, last error %v", tab.name, selector, what, within, last, lastErr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitEval polls a JavaScript expression until it is true.
func (tab *browserTab) waitEval(t testing.TB, expr string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var v bool
		err := tab.eval(expr, &v)
		if err == nil && v {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s not true within %s (last error %v)", tab.name, expr, within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// click clicks the first element matching a CSS selector.
func (tab *browserTab) click(selector string) error {
	return tab.eval(fmt.Sprintf(`((sel) => { const el = document.querySelector(sel); if (!el) throw new Error("no element " + sel); el.click(); return true })(%q)`, selector), nil)
}

// screenshot saves a PNG of the tab's viewport to each path.
func (tab *browserTab) screenshot(paths ...string) error {
	ctx, cancel := context.WithTimeout(tab.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		return fmt.Errorf("%s: screenshot: %w", tab.name, err)
	}
	// Some cdproto versions hand the image back still base64-encoded.
	if len(png) > 0 && png[0] != 0x89 {
		if dec, derr := base64.StdEncoding.DecodeString(string(png)); derr == nil {
			png = dec
		}
	}
	if len(png) < 8 || string(png[1:4]) != "PNG" {
		return errors.New(tab.name + ": screenshot is not a PNG")
	}
	for _, p := range paths {
		if err := os.WriteFile(p, png, 0o644); err != nil {
			return fmt.Errorf("%s: screenshot: %w", tab.name, err)
		}
	}
	return nil
}
