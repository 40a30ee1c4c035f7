// The training run's loss curve (launcher/loss_curve.h): loss.csv reads back
// exactly what was written, a broken line is named by file and line, and
// loss.png is a PNG any viewer opens, checked here by a decoder of the test's
// own over zlib, with the curves where the chart's geometry says they are.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "launcher/loss_curve.h"
#include "test_paths.h"

namespace tandem::launcher {
namespace {

using testing::TempDir;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

bool same_double(double a, double b) {
  return (std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, sizeof a) == 0;
}

// ---- loss.csv ----

TEST(LossCsv, LineHasEmptyFieldsForUnmeasuredValues) {
  EXPECT_EQ(loss_csv_header(), "step,train_loss,val_loss,lr,tokens_per_s");
  EXPECT_EQ(loss_csv_line({10, 2.5, kNaN, 0.001, 1234.5}), "10,2.5,,0.001,1234.5");
  EXPECT_EQ(loss_csv_line({0, kNaN, kNaN, kNaN, kNaN}), "0,,,,");
}

TEST(LossCsv, RoundTripsEveryDoubleExactly) {
  TempDir dir;
  const std::string path = dir.file(kLossCsvFile);
  const std::vector<LossPoint> written = {
      {0, 4.1743917465209961, 4.1801, 0.0, 0.0},
      {10, 0.1 + 0.2, kNaN, 6e-5, 123456.78901234567},
      {20, 1e-300, kNaN, 2.2250738585072014e-308, 1.7976931348623157e308},
      {30, kNaN, 3.0000000000000004, 1.0 / 3.0, kNaN},
      {9007199254740993, -0.0, -1.5, 5e-324, 42},
  };
  for (const LossPoint& p : written) {
    const Status s = append_loss_csv(path, p);
    ASSERT_TRUE(s.ok()) << s.to_string();
  }
  // The header once, then a line per point.
  const std::string text = testing::read_file(path);
  EXPECT_EQ(text.substr(0, text.find('\n')), loss_csv_header());
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), static_cast<long>(written.size() + 1));

  auto read = read_loss_csv(path);
  ASSERT_TRUE(read.ok()) << read.status().to_string();
  ASSERT_EQ(read->size(), written.size());
  for (size_t i = 0; i < written.size(); ++i) {
    const LossPoint &w = written[i], &r = (*read)[i];
    EXPECT_EQ(r.step, w.step) << "line " << i + 2;
    EXPECT_TRUE(same_double(r.train_loss, w.train_loss)) << "line " << i + 2 << ": " << r.train_loss;
    EXPECT_TRUE(same_double(r.val_loss, w.val_loss)) << "line " << i + 2 << ": " << r.val_loss;
    EXPECT_TRUE(same_double(r.lr, w.lr)) << "line " << i + 2 << ": " << r.lr;
    EXPECT_TRUE(same_double(r.tokens_per_s, w.tokens_per_s)) << "line " << i + 2 << ": " << r.tokens_per_s;
  }
}

TEST(LossCsv, MalformedLineIsNamedByFileAndLine) {
  TempDir dir;
  const std::string path = dir.file(kLossCsvFile);
  const std::string header = loss_csv_header() + "\n";
  const std::string good = "1,2.5,,0.001,100\n";
  const struct {
    std::string text, where, why;
  } cases[] = {
      {header + good + "2,2.4,,0.001\n", ":3:", "got 4"},
      {header + good + good + "3,2.4,,0.001,100,7\n", ":4:", "got 6"},
      {header + "x,2.4,,0.001,100\n", ":2:", "step"},
      {header + "4,2.4abc,,0.001,100\n", ":2:", "train_loss"},
      {header + "4,2.4, ,0.001,100\n", ":2:", "val_loss"},
      {"step,loss\n" + good, ":1:", "header"},
  };
  for (const auto& c : cases) {
    testing::write_file(path, c.text);
    auto read = read_loss_csv(path);
    ASSERT_FALSE(read.ok()) << c.text;
    EXPECT_EQ(read.status().code(), StatusCode::kDataLoss);
    EXPECT_NE(read.status().message().find(path + c.where), std::string::npos) << read.status().to_string();
    EXPECT_NE(read.status().message().find(c.why), std::string::npos) << read.status().to_string();
  }
  EXPECT_EQ(read_loss_csv(dir.file("absent.csv")).status().code(), StatusCode::kNotFound);
}

// ---- loss.png, decoded independently ----

struct Image {
  int width = 0, height = 0;
  std::vector<Rgb> pixels;
  Rgb at(int x, int y) const { return pixels[size_t(y) * size_t(width) + size_t(x)]; }
};

uint32_t be32(const std::string& s, size_t at) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = v << 8 | static_cast<uint8_t>(s[at + i]);
  return v;
}

int paeth(int a, int b, int c) {
  const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

// Every structural rule a viewer relies on, as gtest failures; the pixels
// when all hold.
void decode_png(const std::string& path, Image& image) {
  const std::string png = testing::read_file(path);
  ASSERT_GE(png.size(), 8u);
  ASSERT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  std::string idat;
  bool ihdr = false, iend = false;
  for (size_t at = 8; at < png.size();) {
    ASSERT_FALSE(iend) << "data after IEND";
    ASSERT_LE(at + 12, png.size()) << "truncated chunk";
    const uint32_t length = be32(png, at);
    ASSERT_LE(at + 12 + length, png.size()) << "truncated chunk";
    const std::string type = png.substr(at + 4, 4);
    const auto* typed = reinterpret_cast<const Bytef*>(png.data() + at + 4);
    EXPECT_EQ(be32(png, at + 8 + length), crc32(0, typed, length + 4)) << "CRC of " << type;
    const std::string data = png.substr(at + 8, length);
    if (!ihdr) {
      ASSERT_EQ(type, "IHDR");
      ASSERT_EQ(length, 13u);
      image.width = static_cast<int>(be32(data, 0)), image.height = static_cast<int>(be32(data, 4));
      EXPECT_EQ(data[8], 8) << "bit depth";
      EXPECT_EQ(data[9], 2) << "colour type RGB";
      EXPECT_EQ(data.substr(10), std::string(3, '\0')) << "compression, filter, interlace";
      ihdr = true;
    }
    if (type == "IDAT") idat += data;
    if (type == "IEND") iend = true;
    at += 12 + length;
  }
  ASSERT_TRUE(iend) << "no IEND";
  ASSERT_GT(image.width, 0);
  ASSERT_GT(image.height, 0);
  const size_t stride = size_t(image.width) * 3, expected = size_t(image.height) * (1 + stride);
  std::vector<uint8_t> raw(expected + 1);  // one spare byte: more data than expected fails
  uLongf raw_size = raw.size();
  ASSERT_EQ(uncompress(raw.data(), &raw_size, reinterpret_cast<const Bytef*>(idat.data()), idat.size()), Z_OK);
  ASSERT_EQ(raw_size, expected);
  std::vector<uint8_t> rows(size_t(image.height) * stride);
  for (size_t y = 0; y < size_t(image.height); ++y) {
    const uint8_t filter = raw[y * (1 + stride)];
    ASSERT_LE(filter, 4) << "row " << y;
    for (size_t i = 0; i < stride; ++i) {
      const int a = i >= 3 ? rows[y * stride + i - 3] : 0, b = y > 0 ? rows[(y - 1) * stride + i] : 0;
      const int c = i >= 3 && y > 0 ? rows[(y - 1) * stride + i - 3] : 0;
      const int predictors[] = {0, a, b, (a + b) / 2, paeth(a, b, c)};
      rows[y * stride + i] = static_cast<uint8_t>(raw[y * (1 + stride) + 1 + i] + predictors[filter]);
    }
  }
  for (size_t i = 0; i < rows.size(); i += 3) image.pixels.push_back({rows[i], rows[i + 1], rows[i + 2]});
}

Image chart_of(const std::vector<LossPoint>& points) {
  TempDir dir;
  const std::string path = dir.file(kLossPngFile);
  const Status s = write_loss_png(points, path);
  EXPECT_TRUE(s.ok()) << s.to_string();
  Image image;
  if (s.ok()) decode_png(path, image);
  return image;
}

// The rows of column x that have colour c.
std::vector<int> rows_with(const Image& im, int x, Rgb c) {
  std::vector<int> rows;
  for (int y = 0; y < im.height; ++y)
    if (im.at(x, y) == c) rows.push_back(y);
  return rows;
}

double white_fraction(const Image& im) {
  size_t white = 0;
  for (const Rgb& p : im.pixels) white += p == kChartBackground;
  return double(white) / double(im.pixels.size());
}

// The curve colours appear only inside the axes' frame (a few pixels around
// the data area), never in the margins, whose corners stay white.
void expect_curves_framed(const Image& im, const LossChartGeometry& g) {
  constexpr int kSlack = 14;
  for (int y = 0; y < im.height; ++y)
    for (int x = 0; x < im.width; ++x) {
      const Rgb p = im.at(x, y);
      if (!(p == kTrainCurveColour) && !(p == kValCurveColour)) continue;
      ASSERT_TRUE(x >= g.data_left - kSlack && x <= g.data_right + kSlack && y >= g.data_top - kSlack &&
                  y <= g.data_bottom + kSlack)
          << "curve colour at " << x << "," << y;
    }
  for (int y : {0, 1, im.height - 2, im.height - 1}) {
    for (int x : {0, 1, im.width - 2, im.width - 1}) {
      EXPECT_EQ(im.at(x, y), kChartBackground) << x << "," << y;
    }
  }
}

// Ink that is neither background nor curve (tick labels, titles) in a box.
bool has_text_ink(const Image& im, int x0, int y0, int x1, int y1) {
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x) {
      const Rgb p = im.at(x, y);
      if (p.r < 100 && p.g < 100 && p.b < 100) return true;
    }
  return false;
}

TEST(LossPng, ValidChartWithBothCurvesWhereThePointsAre) {
  std::vector<LossPoint> points;
  for (int64_t step = 0; step <= 1000; step += 10) {
    const double train = 4.0 * std::exp(-double(step) / 300.0) + 1.2;
    const double val = step % 100 == 0 ? train + 0.4 : kNaN;
    points.push_back({step, train, val, 3e-4, 5000});
  }
  const LossChartGeometry g;
  const Image im = chart_of(points);
  ASSERT_EQ(im.width, g.width);
  ASSERT_EQ(im.height, g.height);

  const auto first_train = rows_with(im, g.data_left, kTrainCurveColour);
  const auto last_train = rows_with(im, g.data_right, kTrainCurveColour);
  ASSERT_FALSE(first_train.empty()) << "no train curve at the first step's column";
  ASSERT_FALSE(last_train.empty()) << "no train curve at the last step's column";
  EXPECT_LT(first_train.back(), last_train.front()) << "a falling loss must be drawn falling";
  for (int64_t step : {0, 300, 500, 1000}) {
    const int x = g.data_left + int(std::lround(double(step) / 1000.0 * (g.data_right - g.data_left)));
    const auto val = rows_with(im, x, kValCurveColour);
    ASSERT_FALSE(val.empty()) << "no val marker at step " << step << " (column " << x << ")";
    // Val is above train (larger loss) at every eval step.
    const auto train = rows_with(im, x, kTrainCurveColour);
    ASSERT_FALSE(train.empty()) << "no train curve at step " << step;
    EXPECT_LT(val.back(), train.front()) << "step " << step;
  }
  expect_curves_framed(im, g);
  EXPECT_GT(white_fraction(im), 0.8);
  EXPECT_TRUE(has_text_ink(im, g.data_left - 12, g.data_bottom + 14, g.data_right, g.height)) << "x labels";
  EXPECT_TRUE(has_text_ink(im, 0, g.data_top, g.data_left - 14, g.data_bottom)) << "y labels";
}

TEST(LossPng, DegenerateInputsStillMakeValidCharts) {
  const LossChartGeometry g;
  const std::vector<std::vector<LossPoint>> inputs = {
      {},
      {{5, 2.0, kNaN, 1e-3, 10}},
      {{0, 3.0, kNaN, 1e-3, 10}, {10, 2.0, kNaN, 1e-3, 10}, {20, 1.5, kNaN, 1e-3, 10}},
      {{0, 1.25, kNaN, 1e-3, 10}, {10, 1.25, kNaN, 1e-3, 10}},
      {{0, kNaN, kNaN, 1e-3, 10}, {10, kNaN, kNaN, 1e-3, 10}},
      {{100, 0.0, 0.0, 0, 0}},
      {{0, std::numeric_limits<double>::infinity(), 1e-9, 0, 0}, {7, 1e9, 2e-9, 0, 0}},
  };
  for (size_t i = 0; i < inputs.size(); ++i) {
    SCOPED_TRACE("input " + std::to_string(i));
    const Image im = chart_of(inputs[i]);
    ASSERT_EQ(im.width, g.width);
    ASSERT_EQ(im.height, g.height);
    expect_curves_framed(im, g);
    EXPECT_GT(white_fraction(im), 0.8);
  }
  // Constant loss: a flat line from the first column to the last.
  const Image flat = chart_of(inputs[3]);
  const auto first = rows_with(flat, g.data_left, kTrainCurveColour);
  ASSERT_FALSE(first.empty());
  EXPECT_EQ(first, rows_with(flat, g.data_right, kTrainCurveColour));
  // One point: still visible, in the middle.
  const Image one = chart_of(inputs[1]);
  EXPECT_FALSE(rows_with(one, (g.data_left + g.data_right) / 2, kTrainCurveColour).empty());
}

TEST(LossPng, UnwritablePathIsAnError) {
  TempDir dir;
  const Status s = write_loss_png({{0, 1, 1, 0, 0}}, dir.file("missing/loss.png"));
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.to_string();
  EXPECT_NE(s.message().find("missing/loss.png"), std::string::npos) << s.to_string();
}

}  // namespace
}  // namespace tandem::launcher
