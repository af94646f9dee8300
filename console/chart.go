package console

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// humanBytes writes a byte count in decimal units, as bills and dashboards
// do: "512 B", "1.2 GB", "37 TB".
func humanBytes(n uint64) string {
	if n < 1000 {
		return strconv.FormatUint(n, 10) + " B"
	}
	units := []string{"kB", "MB", "GB", "TB", "PB", "EB"}
	v := float64(n)
	i := -1
	for v >= 1000 && i < len(units)-1 {
		v /= 1000
		i++
	}
	// Rounding can carry into the next unit: 999,950 bytes is "1.0 MB", not "1000.0 kB".
	if v >= 999.5 && i < len(units)-1 {
		v /= 1000
		i++
	}
	if v < 10 {
		return fmt.Sprintf("%.1f %s", v, units[i])
	}
	return fmt.Sprintf("%.0f %s", v, units[i])
}

// exact writes an integer with thousands separators, for figures that must
// be read to the last byte: "1,234,567".
func exact[T int | int64 | uint64](n T) string {
	s := strconv.FormatUint(uint64(absInt(n)), 10)
	out := make([]byte, 0, len(s)+len(s)/3+1)
	if n < 0 {
		out = append(out, '-')
	}
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func absInt[T int | int64 | uint64](n T) T {
	if n < 0 {
		return -n
	}
	return n
}

// humanDuration rounds a lag for reading: seconds matter for a minute,
// minutes for two days, hours after that.
func humanDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "none"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Round(time.Minute)/time.Minute))
	case d < 48*time.Hour:
		m := int(d.Round(time.Minute) / time.Minute)
		return fmt.Sprintf("%dh%02dm", m/60, m%60)
	default:
		h := int(d.Round(time.Hour) / time.Hour)
		return fmt.Sprintf("%dd%dh", h/24, h%24)
	}
}

// chartData is a bar chart of bytes per day, laid out for the chart template.
type chartData struct {
	Width, Height    int
	Left, Top, PlotW float64
	PlotH, Bottom    float64
	Bars             []chartBar
	Ticks            []chartTick
	Labels           []chartLabel
	Empty            bool
}

type chartBar struct {
	X, Y, W, H float64
	Title      string
}

type chartTick struct {
	Y     float64
	Label string
}

type chartLabel struct {
	X     float64
	Label string
}

// chart lays out one bar per day, the y axis in round human units.
func chart(days []DayTotal) chartData {
	c := chartData{Width: 760, Height: 240, Left: 70, Top: 12}
	c.PlotW = float64(c.Width) - c.Left - 10
	c.PlotH = float64(c.Height) - c.Top - 34
	c.Bottom = c.Top + c.PlotH
	var peak uint64
	for _, d := range days {
		peak = max(peak, d.Bytes)
	}
	c.Empty = peak == 0
	step := niceStep(float64(peak) / 4)
	top := step * math.Ceil(float64(peak)/step)
	if top == 0 {
		top = step
	}
	for v := 0.0; v <= top+step/2; v += step {
		c.Ticks = append(c.Ticks, chartTick{Y: round1(c.Bottom - v/top*c.PlotH), Label: humanBytes(uint64(v))})
	}
	if len(days) == 0 {
		return c
	}
	slot := c.PlotW / float64(len(days))
	for i, d := range days {
		h := float64(d.Bytes) / top * c.PlotH
		x := c.Left + float64(i)*slot
		c.Bars = append(c.Bars, chartBar{
			X: round1(x + slot*0.1), W: round1(slot * 0.8),
			Y: round1(c.Bottom - h), H: round1(h),
			Title: fmt.Sprintf("%s: %s bytes (%s), %s", d.Date, exact(d.Bytes), humanBytes(d.Bytes), count(d.Events, "event")),
		})
		// A date under every fifth bar and the last: thirty would overlap.
		if i%5 == 0 || i == len(days)-1 {
			label := d.Date
			if len(label) == len("2006-01-02") {
				label = label[5:]
			}
			c.Labels = append(c.Labels, chartLabel{X: round1(x + slot/2), Label: label})
		}
	}
	return c
}

// niceStep rounds a step up to 1, 2 or 5 times a power of ten, so the axis
// reads 0, 200 MB, 400 MB... rather than 0, 187 MB, 374 MB.
func niceStep(raw float64) float64 {
	if raw <= 1 {
		return 1
	}
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*pow >= raw {
			return m * pow
		}
	}
	return 10 * pow
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }

// count writes "1 event", "2 events".
func count(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return exact(n) + " " + noun + "s"
}
