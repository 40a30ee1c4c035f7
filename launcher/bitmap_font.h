// A 5x7 bitmap font (two more rows below the baseline for g and p) for the
// text of the launcher's charts (loss.png): tick labels, axis titles, the
// legend. Only what the charts write: digits, '.', '-', the space and the
// lowercase letters of their words ("loss x 1e-9" included).
#pragma once

namespace tandem::launcher {

inline constexpr int kGlyphWidth = 5;
inline constexpr int kGlyphHeight = 7;   // rows above the baseline: digits and capitals
inline constexpr int kGlyphDescent = 2;  // rows below it: the tails of g and p

bool has_glyph(char c);
// Whether pixel (x, y) of c's glyph is ink; (0, 0) is the top left, rows
// kGlyphHeight and beyond are below the baseline. False for a character
// without a glyph and outside the cell.
bool glyph_ink(char c, int x, int y);

}  // namespace tandem::launcher
