package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"testing"

	"pgregory.net/rapid"
)

func TestMandelbrotKnownPoints(t *testing.T) {
	// One-pixel views whose pixel centre is exactly c.
	tests := []struct {
		name   string
		cx, cy float64
		want   int
	}{
		{"origin is inside", 0, 0, 1000},
		{"-2 is inside (tip)", -2, 0, 1000},
		{"0.25 is inside (cusp)", 0.25, 0, 1000},
		{"-1 is inside (period 2)", -1, 0, 1000},
		{"i is inside", 0, 1, 1000},
		{"1 escapes after 3", 1, 0, 3},
		{"2+2i escapes after 1", 2, 2, 1},
		{"-2.5 escapes after 1", -2.5, 0, 1},
		{"0.5 escapes after 5", 0.5, 0, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := fmt.Sprintf(`{"x0":0,"y0":0,"w":1,"h":1,"width":1,"height":1,"x_min":%v,"x_max":%v,"y_min":%v,"y_max":%v,"max_iter":1000}`,
				tt.cx-1, tt.cx+1, tt.cy-1, tt.cy+1)
			out, err := mandelbrotKind{}.Run(context.Background(), json.RawMessage(in))
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("[%d]", tt.want); string(out) != want {
				t.Errorf("output %s, want %s", out, want)
			}
		})
	}
}

func TestMandelbrotTilesCoverTheImage(t *testing.T) {
	for _, size := range [][2]int{{1, 1}, {7, 5}, {64, 48}, {3, 100}, {100, 3}} {
		w, h := size[0], size[1]
		for _, n := range []int{1, 2, 3, 5, 7, 64, w * h / 2, w*h - 1, w * h} {
			if n < 1 || n > w*h {
				continue
			}
			tiles := mandelbrotTiles(w, h, n)
			if len(tiles) != n {
				t.Fatalf("%dx%d in %d: %d tiles", w, h, n, len(tiles))
			}
			seen := make([]int, w*h)
			largest := 0
			for _, tl := range tiles {
				if tl.W < 1 || tl.H < 1 {
					t.Fatalf("%dx%d in %d: empty tile %+v", w, h, n, tl)
				}
				largest = max(largest, tl.W*tl.H)
				for y := tl.Y0; y < tl.Y0+tl.H; y++ {
					for x := tl.X0; x < tl.X0+tl.W; x++ {
						seen[y*w+x]++
					}
				}
			}
			for i, s := range seen {
				if s != 1 {
					t.Fatalf("%dx%d in %d: pixel %d covered %d times", w, h, n, i, s)
				}
			}
			if got := mandelbrotLargestTile(w, h, n); got < largest {
				t.Fatalf("%dx%d in %d: largest tile %d, bound says %d", w, h, n, largest, got)
			}
		}
	}
}

func TestMandelbrotSplit(t *testing.T) {
	view := `"x_min":-2.5,"x_max":1,"y_min":-1.2,"y_max":1.2,"max_iter":500`
	tests := []struct {
		name string
		size string
		hint int
		want int // 0: at least the tile bound
	}{
		{"default", `"width":1024,"height":768`, 0, 64},
		{"hint", `"width":1024,"height":768`, 10, 12}, // raised so tiles fit 65536 pixels
		{"hint kept", `"width":1024,"height":768`, 100, 100},
		{"tiny", `"width":2,"height":2`, 0, 4},
		{"huge", `"width":8192,"height":8192`, 0, 1024},
		{"wide", `"width":8192,"height":3`, 50, 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ins, err := mandelbrotKind{}.Split(json.RawMessage(`{`+tt.size+`,`+view+`}`), tt.hint, DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			if len(ins) != tt.want {
				t.Errorf("%d tasks, want %d", len(ins), tt.want)
			}
			for i, in := range ins {
				var tl mandelbrotTile
				if err := json.Unmarshal(in, &tl); err != nil {
					t.Fatal(err)
				}
				if tl.W*tl.H > mandelbrotMaxTilePixels {
					t.Fatalf("task %d: tile %+v over %d pixels", i, tl, mandelbrotMaxTilePixels)
				}
			}
		})
	}
}

func TestMandelbrotRejects(t *testing.T) {
	ok := map[string]string{"width": "4", "height": "4", "x_min": "-2", "x_max": "1", "y_min": "-1", "y_max": "1", "max_iter": "10"}
	tests := []struct {
		field, value string
		want         error
	}{
		{"width", "0", ErrUnprocessable},
		{"width", "8193", ErrUnprocessable},
		{"height", "1.5", ErrUnprocessable},
		{"max_iter", "100001", ErrUnprocessable},
		{"max_iter", "0", ErrUnprocessable},
		{"x_max", "-2", ErrUnprocessable},
		{"y_min", "2", ErrUnprocessable},
		{"x_max", "1e309", ErrUnprocessable},
		{"x_min", `"a"`, ErrInvalidInput},
		{"y_max", "", ErrUnprocessable}, // missing
	}
	for _, tt := range tests {
		t.Run(tt.field+"="+tt.value, func(t *testing.T) {
			var b bytes.Buffer
			b.WriteString("{")
			first := true
			for _, f := range mandelbrotViewFields {
				v := ok[f]
				if f == tt.field {
					v = tt.value
				}
				if v == "" {
					continue
				}
				if !first {
					b.WriteString(",")
				}
				first = false
				fmt.Fprintf(&b, "%q:%s", f, v)
			}
			b.WriteString("}")
			_, err := mandelbrotKind{}.Split(b.Bytes(), 0, DefaultLimits())
			if !errors.Is(err, tt.want) {
				t.Fatalf("%s: err = %v, want %v", b.String(), err, tt.want)
			}
		})
	}
}

// mandelbrotWhole runs the view as one tile: the direct computation the
// tiled run must equal.
func mandelbrotWhole(t *testing.T, input string) []int {
	t.Helper()
	var v mandelbrotView
	if err := json.Unmarshal([]byte(input), &v); err != nil {
		t.Fatal(err)
	}
	type whole struct {
		mandelbrotTile
		mandelbrotView
	}
	in, _ := json.Marshal(whole{mandelbrotTile{0, 0, v.Width, v.Height}, v})
	out, err := mandelbrotKind{}.Run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	var counts []int
	if err := json.Unmarshal(out, &counts); err != nil {
		t.Fatal(err)
	}
	return counts
}

func TestMandelbrotSplitRunReduceAndPNG(t *testing.T) {
	input := `{"width":40,"height":30,"x_min":-2.5,"x_max":1,"y_min":-1.2,"y_max":1.2,"max_iter":100}`
	want := mandelbrotWhole(t, input)
	for _, hint := range []int{1, 7, 64, 1200} {
		k := mandelbrotKind{}
		ins, err := k.Split(json.RawMessage(input), hint, DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		outs := runAll(t, k, ins)
		res, err := k.Reduce("job/1", json.RawMessage(input), outs)
		if err != nil {
			t.Fatal(err)
		}
		if string(res) != `{"width":40,"height":30,"image":"/api/v1/jobs/job%2F1/result.png"}` {
			t.Errorf("result %s", res)
		}
		// Reassemble the image from the tiles and compare pixel by pixel.
		got := make([]int, 40*30)
		for i, tl := range mandelbrotTiles(40, 30, len(outs)) {
			var counts []int
			if err := json.Unmarshal(outs[i], &counts); err != nil {
				t.Fatal(err)
			}
			for j, c := range counts {
				got[(tl.Y0+j/tl.W)*40+tl.X0+j%tl.W] = c
			}
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("hint %d: pixel %d is %d in tiles, %d whole", hint, i, got[i], want[i])
			}
		}
		pngBytes, err := MandelbrotPNG(json.RawMessage(input), outs)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(pngBytes))
		if err != nil {
			t.Fatal(err)
		}
		if b := img.Bounds(); b.Dx() != 40 || b.Dy() != 30 {
			t.Fatalf("png is %v", b)
		}
		for i, c := range want {
			r, g, b, _ := img.At(i%40, i/40).RGBA()
			black := r == 0 && g == 0 && b == 0
			if black != (c == 100) {
				t.Fatalf("pixel %d (count %d) black=%v", i, c, black)
			}
		}
	}
}

func TestMandelbrotPartialPNG(t *testing.T) {
	input := json.RawMessage(`{"width":8,"height":8,"x_min":-2.5,"x_max":1,"y_min":-1.2,"y_max":1.2,"max_iter":50}`)
	ins, err := mandelbrotKind{}.Split(input, 2, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	outs := runAll(t, mandelbrotKind{}, ins)
	outs[1] = nil // the bottom band has no result yet
	pngBytes, err := MandelbrotPNG(input, outs)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(pngBytes))
	if err != nil {
		t.Fatal(err)
	}
	for y := 4; y < 8; y++ {
		for x := range 8 {
			if r, g, b, _ := img.At(x, y).RGBA(); r != 128*0x101 || g != r || b != r {
				t.Fatalf("pixel %d,%d of a missing tile is %v,%v,%v, want grey", x, y, r, g, b)
			}
		}
	}
	if _, err := (mandelbrotKind{}).Reduce("j", input, outs); err == nil {
		t.Error("reduce accepted a missing output")
	}
}

func TestMandelbrotOutputRejects(t *testing.T) {
	input := json.RawMessage(`{"width":2,"height":1,"x_min":-2.5,"x_max":1,"y_min":-1.2,"y_max":1.2,"max_iter":50}`)
	for _, out := range []string{``, `[1]`, `[1,2,3]`, `[1,51]`, `[1,-1]`, `[1,1.5]`, `[1,01]`, `[1,2`, `[1,2]x`, `{"a":1}`, `[1,,2]`, `[1 2]`} {
		if res, err := (mandelbrotKind{}).Reduce("j", input, []json.RawMessage{json.RawMessage(out)}); err == nil {
			t.Errorf("output %q reduced to %s", out, res)
		}
		if out != "" {
			if _, err := MandelbrotPNG(input, []json.RawMessage{json.RawMessage(out)}); err == nil {
				t.Errorf("png accepted output %q", out)
			}
		}
	}
	if _, err := (mandelbrotKind{}).Reduce("j", input, []json.RawMessage{json.RawMessage(" [ 1 , 50 ] ")}); err != nil {
		t.Errorf("spaced output: %v", err)
	}
}

func TestMandelbrotTileCountProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v := mandelbrotView{
			Width:  rapid.IntRange(1, mandelbrotMaxSide).Draw(t, "width"),
			Height: rapid.IntRange(1, mandelbrotMaxSide).Draw(t, "height"),
		}
		hint := rapid.IntRange(0, 5000).Draw(t, "hint")
		n := mandelbrotTaskCount(v, hint)
		if n < 1 || n > v.Width*v.Height {
			t.Fatalf("%d tiles for %dx%d", n, v.Width, v.Height)
		}
		tiles := mandelbrotTiles(v.Width, v.Height, n)
		area := 0
		for _, tl := range tiles {
			if tl.W*tl.H > mandelbrotMaxTilePixels || tl.W < 1 || tl.H < 1 {
				t.Fatalf("%dx%d in %d: tile %+v", v.Width, v.Height, n, tl)
			}
			area += tl.W * tl.H
		}
		if len(tiles) != n || area != v.Width*v.Height {
			t.Fatalf("%dx%d in %d: %d tiles covering %d pixels", v.Width, v.Height, n, len(tiles), area)
		}
		if hint > 0 && n < min(hint, v.Width*v.Height) {
			t.Fatalf("hint %d lowered to %d", hint, n)
		}
	})
}
