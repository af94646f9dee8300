// Package browsertest drives one headless Chromium per test binary, for
// tests that check pages as a person sees them: a tab per test (its own
// cookies), full-page screenshots kept for people to look at, and steps that
// fail the test with what was being done. It imports testing, so only
// _test.go files may import it: it must never reach a shipped binary.
package browsertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// InstallHint is how to get the browser these tests need.
const InstallHint = "run `bash scripts/services.sh install` to install chromium"

// One headless browser serves every browser test in a test binary; each test
// gets its own tab in its own browser context.
var browser struct {
	once   sync.Once
	ctx    context.Context
	cancel context.CancelFunc
	err    error
}

// Main runs the tests and then stops the browser, if one was started. Call it
// from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if browser.cancel != nil {
		browser.cancel()
	}
	os.Exit(code)
}

// FindChromium finds the browser: $EGRESSD_CHROMIUM, else chromium,
// chromium-browser or google-chrome on PATH. Its error says how to install one.
func FindChromium() (string, error) {
	if p := os.Getenv("EGRESSD_CHROMIUM"); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			return "", fmt.Errorf("EGRESSD_CHROMIUM=%s is not an executable (unset it, or %s): %w", p, InstallHint, err)
		}
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no chromium, chromium-browser or google-chrome on PATH and EGRESSD_CHROMIUM is not set: " + InstallHint)
}

func start() {
	path, err := FindChromium()
	if err != nil {
		browser.err = err
		return
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-gpu", true))
	if os.Geteuid() == 0 {
		// Chromium refuses to start its sandbox as root.
		opts = append(opts, chromedp.NoSandbox)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	browser.ctx = ctx
	browser.cancel = func() { cancelCtx(); cancelAlloc() }
	// The first Run starts the browser; it must not have a timeout (that
	// would stop the browser with it), so a hung start is bounded here.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err = <-started:
	case <-time.After(90 * time.Second):
		err = errors.New("the browser did not start within 90s")
	}
	if err != nil {
		browser.err = fmt.Errorf("starting %s: %w", path, err)
	}
}

// Tab opens a fresh tab with its own cookies, closed when the test ends, and
// bounds everything done in it by timeout. Without a browser the test fails:
// a browser test that skips would pass for a page nobody looked at.
func Tab(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	browser.once.Do(start)
	if browser.err != nil {
		t.Fatalf("browser tests need a headless Chromium: %v", browser.err)
	}
	ctx, cancel := chromedp.NewContext(browser.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(cancelTimeout)
	return ctx
}

var (
	shotsOnce sync.Once
	shotsErr  error
)

// Screenshot saves a full-page PNG of the tab as name.png under
// $EGRESSD_SCREENSHOTS (kept for people to look at) or the test's temporary
// directory, logs its path and returns it.
func Screenshot(t testing.TB, ctx context.Context, name string) string {
	t.Helper()
	dir := os.Getenv("EGRESSD_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	} else {
		shotsOnce.Do(func() { shotsErr = os.MkdirAll(dir, 0o755) })
		if shotsErr != nil {
			t.Fatal(shotsErr)
		}
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	return path
}

// Run runs the steps, failing the test with what was being done.
func Run(t testing.TB, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// Text is the visible text of the element sel selects.
func Text(t testing.TB, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("reading %s: %v", sel, err)
	}
	return s
}

// Eval evaluates a JavaScript expression in the page.
func Eval[T any](t testing.TB, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

// ExpectTexts checks the visible text of elements, selector to text.
func ExpectTexts(t testing.TB, ctx context.Context, page string, want map[string]string) {
	t.Helper()
	for sel, w := range want {
		if got := Text(t, ctx, sel); got != w {
			t.Errorf("%s: %s shows %q, want %q", page, sel, got, w)
		}
	}
}

// Location is the tab's URL.
func Location(t testing.TB, ctx context.Context) string {
	t.Helper()
	u, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	return u
}
