// The loss curve of a training run. Rank 0 reports a LossPoint per logged
// step; the launcher appends each as a line of <run dir>/loss.csv (so a
// crash leaves every line reported so far) and, when the job ends, renders
// <run dir>/loss.png from that file.
//
// loss.csv: the header "step,train_loss,val_loss,lr,tokens_per_s", then one
// line per point; a value not measured at that step (NaN) is an empty field.
// Numbers are written in their shortest form that reads back to the same
// double, so the CSV loses nothing.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/status.h"

namespace tandem::launcher {

inline constexpr char kLossCsvFile[] = "loss.csv";
inline constexpr char kLossPngFile[] = "loss.png";

struct LossPoint {
  int64_t step = 0;
  double train_loss = 0;  // NaN: not measured at this step
  double val_loss = 0;    // NaN except every eval interval
  double lr = 0;
  double tokens_per_s = 0;
};

std::string loss_csv_header();                // no newline
std::string loss_csv_line(const LossPoint&);  // no newline
// One data line back into a point; DataLoss saying which field is wrong.
Result<LossPoint> parse_loss_csv_line(std::string_view line);
// Appends a line (ending in '\n') to `path`, creating the file with its
// header first when it does not exist or is empty.
Status append_loss_csv(const std::string& path, const LossPoint& point);
// The points of a loss.csv; DataLoss naming "path:line" for a wrong header, a
// line without five fields, or a field that is not a number.
Result<std::vector<LossPoint>> read_loss_csv(const std::string& path);

// The chart of write_loss_png, pinned so that a reader (and the tests) know
// where things are. The first point's step is drawn at column data_left and
// the last point's at data_right, steps in between linearly; larger losses
// are higher (smaller rows) inside [data_top, data_bottom].
struct LossChartGeometry {
  int width = 800, height = 500;
  int data_left = 110, data_right = 768, data_top = 52, data_bottom = 428;
};
struct Rgb {
  uint8_t r, g, b;
  bool operator==(const Rgb&) const = default;
};
inline constexpr Rgb kChartBackground{255, 255, 255};
inline constexpr Rgb kTrainCurveColour{31, 119, 180};  // a line
inline constexpr Rgb kValCurveColour{214, 39, 40};     // a line with a marker on each point

// An RGB PNG of the train and val losses against the step: axes, grid, tick
// labels, axis titles and a legend. Points with a NaN or infinite loss are
// left out of that curve; no points, or no val points, still make a valid
// chart. Written atomically (runtime/atomic_file.h).
Status write_loss_png(const std::vector<LossPoint>& points, const std::string& path);

}  // namespace tandem::launcher
