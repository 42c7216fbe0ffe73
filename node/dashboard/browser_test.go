package dashboard_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

var screenshotOut = flag.String("dashboard.png", "", "also write the screenshot of TestDashboardInChromium here (docs/dashboard.png)")

// chromium finds a Chromium or Chrome binary, "" when there is none.
func chromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

const shotW, shotH = 1280, 1000

// TestDashboardInChromium loads a volunteer's page from a real network in
// headless Chromium, waits for the first poll to render, checks that the DOM
// shows the network's real peer count, coverage and balance, and takes a
// screenshot that must be the window's size and not blank.
//
// chromedp drives the browser over the DevTools protocol, so the test can
// wait for the data to render and read the DOM; `chromium --screenshot`
// would shoot at load, before the first poll answers.
func TestDashboardInChromium(t *testing.T) {
	bin := chromium()
	if bin == "" {
		t.Skip("no Chromium found (apt-get install chromium): the page is not tested in a browser")
	}
	f := start(t)
	srv := f.dash[1] // volunteer 1: it serves layers, earned, has a grid signal
	v := f.net.Volunteers[0]

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(shotW, shotH), chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("force-color-profile", "srgb"), chromedp.Flag("force-device-scale-factor", "1"))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 60*time.Second)
	defer cancelT()

	var peers, available, serving string
	var coverage []int
	var shot []byte
	err := chromedp.Run(ctx,
		chromedp.EmulateViewport(shotW, shotH),
		chromedp.Navigate(srv.URL+"/"),
		// The coverage view starts with the first poll; the DHT answers in
		// the next ones.
		chromedp.Poll(`document.getElementById("peer-count").textContent === "3" && document.querySelectorAll(".layer").length === 5`, nil,
			chromedp.WithPollingTimeout(20*time.Second)),
		chromedp.Text("#peer-count", &peers, chromedp.ByQuery),
		chromedp.Text("#balance-available", &available, chromedp.ByQuery),
		chromedp.Text("#serving", &serving, chromedp.ByQuery),
		chromedp.Evaluate(`[...document.querySelectorAll(".layer")].map(e => +e.dataset.servers)`, &coverage),
		chromedp.CaptureScreenshot(&shot),
	)
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	b, err := v.Ledger().Store().Balance(v.Ledger().Self())
	if err != nil {
		t.Fatal(err)
	}
	if want := gftText(b.Available()); available != want {
		t.Errorf("page shows a balance of %q, the ledger %q", available, want)
	}
	if peers != "3" || fmt.Sprint(coverage) != wantCoverage || serving != "layers 0–2" {
		t.Errorf("page shows %s peers, coverage %v, serving %q; want 3, %s, layers 0–2", peers, coverage, serving, wantCoverage)
	}

	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if r := img.Bounds(); r.Dx() != shotW || r.Dy() != shotH {
		t.Errorf("screenshot is %v, want %dx%d", r, shotW, shotH)
	}
	if colors, spread := variety(img); colors < 50 || spread < 100 {
		t.Errorf("screenshot looks blank: %d colours, luminance spread %.0f", colors, spread)
	}
	out := filepath.Join(t.TempDir(), "dashboard.png")
	if *screenshotOut != "" {
		out = *screenshotOut
	}
	if err := os.WriteFile(out, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", out)
}

// gftText is how the page writes an amount: en-US grouping, three decimals.
func gftText(milli int64) string {
	neg := milli < 0
	if neg {
		milli = -milli
	}
	whole, frac := milli/1000, milli%1000
	s := fmt.Sprint(whole)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	s = fmt.Sprintf("%s.%03d", s, frac)
	if neg {
		s = "-" + s
	}
	return s
}

// variety counts the distinct colours of img (up to a cap) and the spread of
// its luminance between the 1st and 99th percentile, 0 to 255: a blank or
// one-colour page has few colours and no spread.
func variety(img image.Image) (int, float64) {
	seen := map[[3]uint32]bool{}
	var hist [256]int
	n := 0
	r := img.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y += 2 {
		for x := r.Min.X; x < r.Max.X; x += 2 {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			if len(seen) < 10000 {
				seen[[3]uint32{cr >> 8, cg >> 8, cb >> 8}] = true
			}
			hist[(299*(cr>>8)+587*(cg>>8)+114*(cb>>8))/1000]++
			n++
		}
	}
	pct := func(p float64) int {
		acc := 0
		for i, c := range hist {
			acc += c
			if float64(acc) >= p*float64(n) {
				return i
			}
		}
		return 255
	}
	return len(seen), float64(pct(0.99) - pct(0.01))
}
