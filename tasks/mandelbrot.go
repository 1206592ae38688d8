package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"net/url"
	"strconv"
)

// Limits of the mandelbrot kind.
const (
	mandelbrotMaxSide      = 8192
	mandelbrotMaxIter      = 100_000
	mandelbrotDefaultTasks = 64
	// mandelbrotMaxTilePixels bounds one tile so that its output (at most
	// "100000," per pixel, about 460 KB) fits in one WebSocket message of
	// the default 1 MiB limit.
	mandelbrotMaxTilePixels = 65536
)

// mandelbrotKind renders the Mandelbrot set as iteration counts.
//
//	job input   {"width","height","x_min","x_max","y_min","y_max","max_iter"}
//	task input  {"x0","y0","w","h"} (a tile) plus every field of the job input
//	task output [n, n, ...]: the tile's iteration counts, row-major
//	result      {"width","height","image": "/api/v1/jobs/{id}/result.png"}
//
// Pixel (px, py), with row 0 at the top, samples the centre of its cell:
//
//	cx = x_min + (x_max - x_min) * ((px + 0.5) / width)
//	cy = y_max - (y_max - y_min) * ((py + 0.5) / height)
//
// and its count n is the number of steps, at most max_iter, taken from
// z = 0 before the escape test fails:
//
//	n = 0; zx = 0; zy = 0
//	while n < max_iter:
//	    x2 = zx*zx; y2 = zy*zy
//	    if x2 + y2 > 4: break
//	    zy = 2*zx*zy + cy      // (2*zx)*zy, then + cy
//	    zx = x2 - y2 + cx      // (x2 - y2), then + cx
//	    n = n + 1
//
// Every operation is one IEEE-754 double operation in that order, with no
// fused multiply-add, so webclient/kinds/mandelbrot.js gives the same n.
//
// Tiles: n tasks cut the rows into min(n, height) bands of nearly equal
// height; the n tasks are dealt to the bands as evenly as possible (the
// first bands get one more) and each band is cut into that many tiles of
// nearly equal width. The layout depends only on width, height and n, so
// the reducer and MandelbrotPNG know every tile from the number of outputs.
type mandelbrotKind struct{}

func init() { register(mandelbrotKind{}) }

func (mandelbrotKind) Name() string { return "mandelbrot" }

// mandelbrotView is the job input, and the part of a task input that is
// the same for every tile.
type mandelbrotView struct {
	Width   int     `json:"width"`
	Height  int     `json:"height"`
	XMin    float64 `json:"x_min"`
	XMax    float64 `json:"x_max"`
	YMin    float64 `json:"y_min"`
	YMax    float64 `json:"y_max"`
	MaxIter int     `json:"max_iter"`
}

var mandelbrotViewFields = []string{"width", "height", "x_min", "x_max", "y_min", "y_max", "max_iter"}

func (v *mandelbrotView) read(o object) error {
	ints := []struct {
		name string
		max  uint64
		dst  *int
	}{{"width", mandelbrotMaxSide, &v.Width}, {"height", mandelbrotMaxSide, &v.Height}, {"max_iter", mandelbrotMaxIter, &v.MaxIter}}
	for _, f := range ints {
		n, err := o.uint(f.name, f.max)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("%w: %s: %s must be at least 1", ErrUnprocessable, o.what, f.name)
		}
		*f.dst = int(n)
	}
	floats := []struct {
		name string
		dst  *float64
	}{{"x_min", &v.XMin}, {"x_max", &v.XMax}, {"y_min", &v.YMin}, {"y_max", &v.YMax}}
	for _, f := range floats {
		x, err := o.float(f.name)
		if err != nil {
			return err
		}
		*f.dst = x
	}
	if !(v.XMin < v.XMax) || !(v.YMin < v.YMax) {
		return fmt.Errorf("%w: %s: x_min must be less than x_max and y_min less than y_max", ErrUnprocessable, o.what)
	}
	if math.IsInf(v.XMax-v.XMin, 0) || math.IsInf(v.YMax-v.YMin, 0) {
		return fmt.Errorf("%w: %s: the view is too wide for float64", ErrUnprocessable, o.what)
	}
	return nil
}

func parseMandelbrotInput(input json.RawMessage) (mandelbrotView, error) {
	var v mandelbrotView
	o, err := parseObject("mandelbrot input", input, mandelbrotViewFields...)
	if err != nil {
		return v, err
	}
	return v, v.read(o)
}

// mandelbrotTile is a rectangle of pixels, in image coordinates.
type mandelbrotTile struct {
	X0 int `json:"x0"`
	Y0 int `json:"y0"`
	W  int `json:"w"`
	H  int `json:"h"`
}

// mandelbrotTiles lays out n tiles (1 ≤ n ≤ width*height) as described on
// mandelbrotKind.
func mandelbrotTiles(width, height, n int) []mandelbrotTile {
	bands := min(n, height)
	tiles := make([]mandelbrotTile, 0, n)
	for b := range bands {
		y0, h := evenPart(uint64(height), uint64(bands), uint64(b))
		_, cols := evenPart(uint64(n), uint64(bands), uint64(b))
		for c := range cols {
			x0, w := evenPart(uint64(width), cols, c)
			tiles = append(tiles, mandelbrotTile{X0: int(x0), Y0: int(y0), W: int(w), H: int(h)})
		}
	}
	return tiles
}

// mandelbrotLargestTile is the pixel count of the largest tile of the
// layout with n tiles.
func mandelbrotLargestTile(width, height, n int) int {
	bands := min(n, height)
	rows := (height + bands - 1) / bands
	fewestCols := n / bands
	return rows * ((width + fewestCols - 1) / fewestCols)
}

// mandelbrotTaskCount picks the number of tiles: the hint (or the default)
// raised until every tile fits mandelbrotMaxTilePixels, and at most one
// tile per pixel.
func mandelbrotTaskCount(v mandelbrotView, hint int) int {
	pixels := v.Width * v.Height
	n := hint
	if n <= 0 {
		n = mandelbrotDefaultTasks
	}
	n = max(n, (pixels+mandelbrotMaxTilePixels-1)/mandelbrotMaxTilePixels)
	n = min(n, pixels)
	for n < pixels && mandelbrotLargestTile(v.Width, v.Height, n) > mandelbrotMaxTilePixels {
		n++
	}
	return n
}

func (mandelbrotKind) Split(input json.RawMessage, tasks int, lim Limits) ([]json.RawMessage, error) {
	v, err := parseMandelbrotInput(input)
	if err != nil {
		return nil, err
	}
	n := mandelbrotTaskCount(v, tasks)
	if lim.MaxTasks > 0 && n > lim.MaxTasks {
		if mandelbrotLargestTile(v.Width, v.Height, lim.MaxTasks) > mandelbrotMaxTilePixels {
			return nil, fmt.Errorf("%w: a %dx%d image needs more than %d tiles of at most %d pixels", ErrTooLarge, v.Width, v.Height, lim.MaxTasks, mandelbrotMaxTilePixels)
		}
		n = lim.MaxTasks
	}
	type taskInput struct {
		mandelbrotTile
		mandelbrotView
	}
	tiles := mandelbrotTiles(v.Width, v.Height, n)
	out := make([]json.RawMessage, len(tiles))
	for i, t := range tiles {
		b, err := json.Marshal(taskInput{t, v})
		if err != nil {
			return nil, fmt.Errorf("mandelbrot task input: %w", err)
		}
		out[i] = b
	}
	return out, nil
}

// mandelbrotTilesFor checks that n outputs can be a layout of the view
// and returns it.
func mandelbrotTilesFor(v mandelbrotView, n int) ([]mandelbrotTile, error) {
	if n < 1 || n > v.Width*v.Height {
		return nil, fmt.Errorf("mandelbrot: %d outputs cannot be the tiles of a %dx%d image", n, v.Width, v.Height)
	}
	return mandelbrotTiles(v.Width, v.Height, n), nil
}

func (mandelbrotKind) Reduce(jobID string, input json.RawMessage, outputs []json.RawMessage) (json.RawMessage, error) {
	v, err := parseMandelbrotInput(input)
	if err != nil {
		return nil, err
	}
	tiles, err := mandelbrotTilesFor(v, len(outputs))
	if err != nil {
		return nil, err
	}
	for i, out := range outputs {
		if err := parseMandelbrotOutput(out, tiles[i].W*tiles[i].H, v.MaxIter, nil); err != nil {
			return nil, fmt.Errorf("mandelbrot task %d output: %w", i, err)
		}
	}
	b, err := json.Marshal(struct {
		Width  int    `json:"width"`
		Height int    `json:"height"`
		Image  string `json:"image"`
	}{v.Width, v.Height, "/api/v1/jobs/" + url.PathEscape(jobID) + "/result.png"})
	if err != nil {
		return nil, fmt.Errorf("mandelbrot result: %w", err)
	}
	return b, nil
}

// parseMandelbrotOutput checks that out is a JSON array of want integers in
// [0, maxIter] and, with each non-nil, calls it with every count in order.
// It scans by hand: a large image has tens of millions of counts and the
// reducer reads them all.
func parseMandelbrotOutput(out []byte, want, maxIter int, each func(int)) error {
	i := 0
	skip := func() {
		for i < len(out) && (out[i] == ' ' || out[i] == '\n' || out[i] == '\r' || out[i] == '\t') {
			i++
		}
	}
	skip()
	if i == len(out) || out[i] != '[' {
		if len(out) == 0 {
			return fmt.Errorf("%w: missing", ErrInvalidInput)
		}
		return fmt.Errorf("%w: not a JSON array", ErrInvalidInput)
	}
	i++
	skip()
	got := 0
	if i < len(out) && out[i] == ']' {
		i++
	} else {
		for {
			start := i
			n := 0
			for i < len(out) && out[i] >= '0' && out[i] <= '9' && n <= maxIter {
				n = n*10 + int(out[i]-'0')
				i++
			}
			if i == start || (out[start] == '0' && i-start > 1) {
				return fmt.Errorf("%w: element %d is not a non-negative integer", ErrInvalidInput, got)
			}
			if n > maxIter {
				return fmt.Errorf("%w: element %d is over max_iter %d", ErrUnprocessable, got, maxIter)
			}
			if got++; got > want {
				return fmt.Errorf("%w: more than the tile's %d pixels", ErrUnprocessable, want)
			}
			if each != nil {
				each(n)
			}
			skip()
			if i < len(out) && out[i] == ',' {
				i++
				skip()
				continue
			}
			if i < len(out) && out[i] == ']' {
				i++
				break
			}
			return fmt.Errorf("%w: malformed array after element %d", ErrInvalidInput, got-1)
		}
	}
	skip()
	if i != len(out) {
		return fmt.Errorf("%w: trailing data after the array", ErrInvalidInput)
	}
	if got != want {
		return fmt.Errorf("%w: %d counts for a tile of %d pixels", ErrUnprocessable, got, want)
	}
	return nil
}

func (mandelbrotKind) Run(ctx context.Context, taskInput json.RawMessage) (json.RawMessage, error) {
	fields := append([]string{"x0", "y0", "w", "h"}, mandelbrotViewFields...)
	o, err := parseObject("mandelbrot task", taskInput, fields...)
	if err != nil {
		return nil, err
	}
	var v mandelbrotView
	if err := v.read(o); err != nil {
		return nil, err
	}
	var t mandelbrotTile
	for _, f := range []struct {
		name string
		max  int
		dst  *int
	}{{"x0", v.Width - 1, &t.X0}, {"y0", v.Height - 1, &t.Y0}, {"w", v.Width, &t.W}, {"h", v.Height, &t.H}} {
		n, err := o.uint(f.name, uint64(f.max))
		if err != nil {
			return nil, err
		}
		*f.dst = int(n)
	}
	if t.W < 1 || t.H < 1 || t.X0+t.W > v.Width || t.Y0+t.H > v.Height || t.W*t.H > mandelbrotMaxTilePixels {
		return nil, fmt.Errorf("%w: mandelbrot task: the tile must lie in the image and have 1 to %d pixels", ErrUnprocessable, mandelbrotMaxTilePixels)
	}
	b := make([]byte, 0, t.W*t.H*4+2)
	b = append(b, '[')
	dx, dy := v.XMax-v.XMin, v.YMax-v.YMin
	w, h := float64(v.Width), float64(v.Height)
	for py := t.Y0; py < t.Y0+t.H; py++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("mandelbrot: %w", err)
		}
		// Explicit float64 conversions forbid fused multiply-adds, which
		// the Go spec allows and JavaScript never does.
		cy := v.YMax - float64(dy*((float64(py)+0.5)/h))
		for px := t.X0; px < t.X0+t.W; px++ {
			cx := v.XMin + float64(dx*((float64(px)+0.5)/w))
			if len(b) > 1 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(mandelbrotCount(cx, cy, v.MaxIter)), 10)
		}
	}
	b = append(b, ']')
	return b, nil
}

// mandelbrotCount is the documented escape-time loop for one point.
func mandelbrotCount(cx, cy float64, maxIter int) int {
	var zx, zy float64
	n := 0
	for n < maxIter {
		x2 := float64(zx * zx)
		y2 := float64(zy * zy)
		if x2+y2 > 4 {
			break
		}
		zy = float64(2*zx*zy) + cy
		zx = x2 - y2 + cx
		n++
	}
	return n
}

// mandelbrotPalette colours a count: index 0 for points that never escaped
// (n == max_iter, black), 1 for pixels without a result yet (grey, so the
// dashboard can show a partial image), and 254 cycling colours for the
// others.
var mandelbrotPalette = func() color.Palette {
	p := make(color.Palette, 256)
	p[0] = color.RGBA{0, 0, 0, 255}
	p[1] = color.RGBA{128, 128, 128, 255}
	for i := 2; i < 256; i++ {
		t := float64(i-2) / 254
		// A smooth, wrapping blue-gold-white cycle.
		r := 0.5 + 0.5*math.Cos(2*math.Pi*(t+0.55))
		g := 0.5 + 0.5*math.Cos(2*math.Pi*(t+0.65))
		b := 0.5 + 0.5*math.Cos(2*math.Pi*(t+0.85))
		p[i] = color.RGBA{uint8(255 * r), uint8(255 * g), uint8(255 * b), 255}
	}
	return p
}()

// MandelbrotPNG renders a mandelbrot job's image from its input and its
// task outputs in task order. A nil or empty output (a task not done yet)
// is drawn grey; a malformed one is an error.
func MandelbrotPNG(input json.RawMessage, outputs []json.RawMessage) ([]byte, error) {
	v, err := parseMandelbrotInput(input)
	if err != nil {
		return nil, err
	}
	tiles, err := mandelbrotTilesFor(v, len(outputs))
	if err != nil {
		return nil, err
	}
	img := image.NewPaletted(image.Rect(0, 0, v.Width, v.Height), mandelbrotPalette)
	for i, t := range tiles {
		out := outputs[i]
		if len(bytes.TrimSpace(out)) == 0 {
			for y := t.Y0; y < t.Y0+t.H; y++ {
				row := img.Pix[y*img.Stride+t.X0 : y*img.Stride+t.X0+t.W]
				for x := range row {
					row[x] = 1
				}
			}
			continue
		}
		k := 0
		err := parseMandelbrotOutput(out, t.W*t.H, v.MaxIter, func(n int) {
			c := uint8(0)
			if n < v.MaxIter {
				c = uint8(2 + n%254)
			}
			img.Pix[(t.Y0+k/t.W)*img.Stride+t.X0+k%t.W] = c
			k++
		})
		if err != nil {
			return nil, fmt.Errorf("mandelbrot task %d output: %w", i, err)
		}
	}
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("encode png: %w", err)
	}
	return buf.Bytes(), nil
}
