// Encoding an image as PNG (8-bit RGB, no interlace) with zlib: what the
// launcher's charts are saved as, readable by any viewer with no library of
// ours.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/status.h"

namespace tandem::launcher {

// `rgb` holds height rows of width pixels, 3 bytes each, top row first.
// InvalidArgument when the sizes disagree; Internal when zlib fails.
Result<std::string> encode_png_rgb(int width, int height, const std::vector<uint8_t>& rgb);

}  // namespace tandem::launcher
