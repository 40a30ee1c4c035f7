// loss.png: the train and val losses of a run against the step, drawn into an
// RGB raster with no library but zlib (png_writer.h).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string_view>

#include "launcher/bitmap_font.h"
#include "launcher/loss_curve.h"
#include "launcher/png_writer.h"
#include "runtime/atomic_file.h"

namespace tandem::launcher {
namespace {

constexpr Rgb kInk{40, 40, 40};
constexpr Rgb kGrid{226, 226, 226};
constexpr Rgb kLegendBorder{170, 170, 170};
constexpr int kTextScale = 2;           // 5x7 glyphs drawn as 10x14
constexpr int kFrameInset = 12;         // data area inside the axes' frame
constexpr int kCurveRadius = 1;         // lines 3 px thick
constexpr int kMarkerRadius = 4;        // val points
constexpr int kTitleMargin = 6;         // the loss axis's title from the image's left edge

int text_width(std::string_view s) { return static_cast<int>(s.size()) * (kGlyphWidth + 1) * kTextScale - kTextScale; }
constexpr int kTextHeight = kGlyphHeight * kTextScale;  // to the baseline: what layout aligns

class Canvas {
 public:
  Canvas(int width, int height) : width_(width), height_(height), rgb_(size_t(width) * size_t(height) * 3) {
    fill_rect(0, 0, width, height, kChartBackground);
  }
  const std::vector<uint8_t>& rgb() const { return rgb_; }

  void set(int x, int y, Rgb c) {
    if (x < 0 || y < 0 || x >= width_ || y >= height_) return;  // clipped
    uint8_t* p = &rgb_[(size_t(y) * size_t(width_) + size_t(x)) * 3];
    p[0] = c.r, p[1] = c.g, p[2] = c.b;
  }
  Rgb at(int x, int y) const {
    const uint8_t* p = &rgb_[(size_t(y) * size_t(width_) + size_t(x)) * 3];
    return {p[0], p[1], p[2]};
  }
  void fill_rect(int x0, int y0, int x1, int y1, Rgb c) {  // [x0, x1) x [y0, y1)
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) set(x, y, c);
  }
  void outline_rect(int x0, int y0, int x1, int y1, Rgb c) {  // inclusive corners
    for (int x = x0; x <= x1; ++x) set(x, y0, c), set(x, y1, c);
    for (int y = y0; y <= y1; ++y) set(x0, y, c), set(x1, y, c);
  }
  void dot(int cx, int cy, int radius, Rgb c) {  // a filled disc
    for (int dy = -radius; dy <= radius; ++dy)
      for (int dx = -radius; dx <= radius; ++dx)
        if (dx * dx + dy * dy <= radius * radius + radius) set(cx + dx, cy + dy, c);
  }
  // Bresenham, with a square brush for thickness.
  void line(int x0, int y0, int x1, int y1, int radius, Rgb c) {
    const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0);
    const int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    for (int err = dx + dy;;) {
      fill_rect(x0 - radius, y0 - radius, x0 + radius + 1, y0 + radius + 1, c);
      if (x0 == x1 && y0 == y1) return;
      const int e2 = 2 * err;
      if (e2 >= dy) err += dy, x0 += sx;
      if (e2 <= dx) err += dx, y0 += sy;
    }
  }
  // Text with its top left at (x, y); `upward` turns it 90 degrees
  // anticlockwise, its baseline then running up from (x, y) at the bottom.
  void text(int x, int y, std::string_view s, Rgb c, bool upward = false) {
    for (size_t i = 0; i < s.size(); ++i) {
      TANDEM_CHECK_MSG(has_glyph(s[i]), std::string("no glyph for '") + s[i] + "'");
      const int advance = static_cast<int>(i) * (kGlyphWidth + 1) * kTextScale;
      for (int gy = 0; gy < kGlyphHeight + kGlyphDescent; ++gy)
        for (int gx = 0; gx < kGlyphWidth; ++gx) {
          if (!glyph_ink(s[i], gx, gy)) continue;
          const int u = advance + gx * kTextScale, v = gy * kTextScale;  // along, down the text
          if (upward)
            fill_rect(x + v, y - u - kTextScale, x + v + kTextScale, y - u, c);
          else
            fill_rect(x + u, y + v, x + u + kTextScale, y + v + kTextScale, c);
        }
    }
  }

 private:
  int width_, height_;
  std::vector<uint8_t> rgb_;
};

// 1, 2 or 5 times a power of ten, near span / target_ticks.
double nice_step(double span, int target_ticks) {
  const double raw = span / target_ticks;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / magnitude;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * magnitude;
}

// A value range mapped linearly onto a pixel range, with its tick values.
struct Axis {
  double lo = 0, hi = 1, step = 0.2;
  int pixel_lo = 0, pixel_hi = 1;  // where lo and hi land (hi may be the smaller pixel)

  int pixel(double v) const {
    return pixel_lo + static_cast<int>(std::lround((v - lo) / (hi - lo) * (pixel_hi - pixel_lo)));
  }
  std::vector<double> ticks() const {
    std::vector<double> out;
    const double first = std::ceil(lo / step - 1e-9), last = std::floor(hi / step + 1e-9);
    for (double k = first; k <= last && out.size() < 64; ++k) out.push_back(k * step);
    return out;
  }
};

// A tick label with as many decimals as the step needs.
std::string tick_label(double v, double step) {
  if (std::fabs(v) < step * 1e-6) v = 0;  // no "-0.0"
  const int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
  char buf[400];  // any double in fixed notation
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// The loss axis's labels, and the power of ten they are in units of when
// plain numbers would not fit the margin ("1.5" meaning 1.5e-9): losses of
// 1e-9 or 1e6 then read as well as losses of 2.3.
struct LossLabels {
  std::vector<std::string> labels;
  int exponent = 0;
};

LossLabels loss_labels(const Axis& y) {
  constexpr size_t kWidestLabel = 5;  // characters that fit beside the axis title
  LossLabels out;
  const std::vector<double> ticks = y.ticks();
  for (double t : ticks) out.labels.push_back(tick_label(t, y.step));
  const bool fits = std::all_of(out.labels.begin(), out.labels.end(),
                                [](const std::string& l) { return l.size() <= kWidestLabel; });
  const double largest = std::max(std::fabs(y.lo), std::fabs(y.hi));
  if (fits || largest == 0) return out;
  out.exponent = static_cast<int>(std::floor(std::log10(largest)));
  const double unit = std::pow(10.0, out.exponent);
  out.labels.clear();
  for (double t : ticks) out.labels.push_back(tick_label(t / unit, y.step / unit));
  return out;
}

struct Series {
  std::vector<std::pair<int64_t, double>> points;  // finite losses only
  Rgb colour;
};

Series finite_series(const std::vector<LossPoint>& points, double LossPoint::*loss, Rgb colour) {
  Series s{{}, colour};
  for (const LossPoint& p : points)
    if (std::isfinite(p.*loss)) s.points.emplace_back(p.step, p.*loss);
  std::stable_sort(s.points.begin(), s.points.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  return s;
}

Axis step_axis(const std::vector<LossPoint>& points, const LossChartGeometry& g) {
  Axis a;
  a.pixel_lo = g.data_left, a.pixel_hi = g.data_right;
  if (points.empty()) {
    a.lo = 0, a.hi = 1;
  } else {
    const auto [min, max] = std::minmax_element(points.begin(), points.end(),
                                                [](const auto& p, const auto& q) { return p.step < q.step; });
    a.lo = static_cast<double>(min->step), a.hi = static_cast<double>(max->step);
    if (a.hi <= a.lo) a.lo -= 1, a.hi += 1;  // one step: centred
  }
  a.step = std::max(1.0, nice_step(a.hi - a.lo, 6));  // steps are integers
  return a;
}

Axis loss_axis(const Series& train, const Series& val, const LossChartGeometry& g) {
  double lo = HUGE_VAL, hi = -HUGE_VAL;
  for (const Series* s : {&train, &val})
    for (const auto& p : s->points) lo = std::min(lo, p.second), hi = std::max(hi, p.second);
  if (lo > hi) lo = 0, hi = 1;  // nothing measured
  if (hi <= lo) {     // one value: a band around it
    const double half = lo == 0 ? 1 : std::fabs(lo) * 0.1;
    lo -= half, hi += half;
  }
  Axis a;
  a.step = nice_step(hi - lo, 5);
  // The range widens to whole ticks so the frame starts and ends on one.
  a.lo = std::floor(lo / a.step) * a.step, a.hi = std::ceil(hi / a.step) * a.step;
  a.pixel_lo = g.data_bottom, a.pixel_hi = g.data_top;
  return a;
}

void draw_series(Canvas& canvas, const Series& s, const Axis& x, const Axis& y, bool markers) {
  for (size_t i = 0; i < s.points.size(); ++i) {
    const int px = x.pixel(static_cast<double>(s.points[i].first)), py = y.pixel(s.points[i].second);
    if (i > 0) {
      const auto& prev = s.points[i - 1];
      canvas.line(x.pixel(static_cast<double>(prev.first)), y.pixel(prev.second), px, py, kCurveRadius, s.colour);
    }
    // A lone point has no line to show it.
    if (markers || s.points.size() == 1) canvas.dot(px, py, markers ? kMarkerRadius : kCurveRadius + 1, s.colour);
  }
}

// The legend goes to whichever corner of the frame hides the fewest curve
// pixels.
void draw_legend(Canvas& canvas, const Series& train, const Series& val, int frame_left, int frame_top,
                 int frame_right, int frame_bottom) {
  std::vector<std::pair<const Series*, std::string_view>> entries;
  if (!train.points.empty()) entries.emplace_back(&train, "train");
  if (!val.points.empty()) entries.emplace_back(&val, "val");
  if (entries.empty()) return;
  constexpr int kPad = 10, kSample = 28, kRow = kTextHeight + 8;
  const int w = kPad + kSample + 8 + text_width("train") + kPad;
  const int h = kPad + static_cast<int>(entries.size()) * kRow - 8 + kPad;
  constexpr int kGap = 8;
  const int corners[4][2] = {{frame_right - kGap - w, frame_top + kGap},
                             {frame_right - kGap - w, frame_bottom - kGap - h},
                             {frame_left + kGap, frame_top + kGap},
                             {frame_left + kGap, frame_bottom - kGap - h}};
  int best = 0;
  long best_hidden = -1;
  for (int c = 0; c < 4; ++c) {
    long hidden = 0;
    for (int y = corners[c][1]; y <= corners[c][1] + h; ++y)
      for (int x = corners[c][0]; x <= corners[c][0] + w; ++x) {
        const Rgb p = canvas.at(x, y);
        hidden += p == train.colour || p == val.colour;
      }
    if (best_hidden < 0 || hidden < best_hidden) best = c, best_hidden = hidden;
  }
  const int x0 = corners[best][0], y0 = corners[best][1];
  canvas.fill_rect(x0, y0, x0 + w + 1, y0 + h + 1, kChartBackground);
  canvas.outline_rect(x0, y0, x0 + w, y0 + h, kLegendBorder);
  for (size_t i = 0; i < entries.size(); ++i) {
    const int top = y0 + kPad + static_cast<int>(i) * kRow, mid = top + kTextHeight / 2;
    const Rgb c = entries[i].first->colour;
    canvas.line(x0 + kPad, mid, x0 + kPad + kSample, mid, kCurveRadius, c);
    if (entries[i].first == &val) canvas.dot(x0 + kPad + kSample / 2, mid, kMarkerRadius, c);
    canvas.text(x0 + kPad + kSample + 8, top, entries[i].second, kInk);
  }
}

Canvas draw_chart(const std::vector<LossPoint>& points, const LossChartGeometry& g) {
  Canvas canvas(g.width, g.height);
  const Series train = finite_series(points, &LossPoint::train_loss, kTrainCurveColour);
  const Series val = finite_series(points, &LossPoint::val_loss, kValCurveColour);
  const Axis x = step_axis(points, g), y = loss_axis(train, val, g);
  const int left = g.data_left - kFrameInset, right = g.data_right + kFrameInset;
  const int top = g.data_top - kFrameInset, bottom = g.data_bottom + kFrameInset;

  for (double t : x.ticks()) canvas.fill_rect(x.pixel(t), top + 1, x.pixel(t) + 1, bottom, kGrid);
  for (double t : y.ticks()) canvas.fill_rect(left + 1, y.pixel(t), right, y.pixel(t) + 1, kGrid);
  draw_series(canvas, train, x, y, false);
  draw_series(canvas, val, x, y, true);
  canvas.outline_rect(left, top, right, bottom, kInk);

  constexpr int kTick = 5;
  for (double t : x.ticks()) {
    const int px = x.pixel(t);
    canvas.fill_rect(px, bottom + 1, px + 1, bottom + 1 + kTick, kInk);
    const std::string label = tick_label(t, x.step);
    const int label_x = std::clamp(px - text_width(label) / 2, 0, g.width - text_width(label));
    canvas.text(label_x, bottom + kTick + 5, label, kInk);
  }
  const LossLabels y_labels = loss_labels(y);
  const std::vector<double> y_ticks = y.ticks();
  for (size_t i = 0; i < y_ticks.size(); ++i) {
    const int py = y.pixel(y_ticks[i]);
    canvas.fill_rect(left - kTick, py, left, py + 1, kInk);
    const std::string& label = y_labels.labels[i];
    canvas.text(left - kTick - 5 - text_width(label), py - kTextHeight / 2, label, kInk);
  }
  canvas.text((left + right - text_width("step")) / 2, bottom + kTick + 5 + kTextHeight + 8, "step", kInk);
  const std::string y_title =
      y_labels.exponent == 0 ? std::string("loss") : "loss x 1e" + std::to_string(y_labels.exponent);
  canvas.text(kTitleMargin, (top + bottom + text_width(y_title)) / 2, y_title, kInk, /*upward=*/true);
  canvas.text((left + right - text_width("training loss")) / 2, (top - kTextHeight) / 2, "training loss", kInk);
  if (train.points.empty() && val.points.empty())
    canvas.text((left + right - text_width("no data")) / 2, (top + bottom - kTextHeight) / 2, "no data", kInk);
  draw_legend(canvas, train, val, left, top, right, bottom);
  return canvas;
}

}  // namespace

Status write_loss_png(const std::vector<LossPoint>& points, const std::string& path) {
  const LossChartGeometry geometry;
  const Canvas canvas = draw_chart(points, geometry);
  TANDEM_ASSIGN_OR_RETURN(const std::string png, encode_png_rgb(geometry.width, geometry.height, canvas.rgb()));
  return write_file_atomically(path, png).with_context("writing the loss chart");
}

}  // namespace tandem::launcher
