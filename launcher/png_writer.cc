#include "launcher/png_writer.h"

#include <zlib.h>

#include <string_view>

namespace tandem::launcher {
namespace {

void put_u32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
}

// length, type, data, and the CRC of type + data (PNG spec section 5.3).
void put_chunk(std::string& out, std::string_view type, std::string_view data) {
  put_u32(out, static_cast<uint32_t>(data.size()));
  const size_t type_at = out.size();
  out.append(type);
  out.append(data);
  const auto* crc_from = reinterpret_cast<const Bytef*>(out.data() + type_at);
  put_u32(out, static_cast<uint32_t>(crc32(crc32(0, nullptr, 0), crc_from,
                                            static_cast<uInt>(type.size() + data.size()))));
}

}  // namespace

Result<std::string> encode_png_rgb(int width, int height, const std::vector<uint8_t>& rgb) {
  if (width <= 0 || height <= 0 || rgb.size() != size_t(width) * size_t(height) * 3)
    return InvalidArgument("png: " + std::to_string(width) + "x" + std::to_string(height) + " image with " +
                           std::to_string(rgb.size()) + " bytes of RGB");
  // Each row is preceded by its filter type; 0 (none) keeps the encoder
  // trivial, and deflate already squeezes a chart's flat colour runs.
  const size_t row_bytes = size_t(width) * 3;
  std::string raw;
  raw.reserve(size_t(height) * (row_bytes + 1));
  for (int y = 0; y < height; ++y) {
    raw += '\0';
    raw.append(reinterpret_cast<const char*>(rgb.data()) + size_t(y) * row_bytes, row_bytes);
  }
  uLongf packed_size = compressBound(static_cast<uLong>(raw.size()));
  std::string packed(packed_size, '\0');
  const int rc = compress2(reinterpret_cast<Bytef*>(packed.data()), &packed_size,
                           reinterpret_cast<const Bytef*>(raw.data()), static_cast<uLong>(raw.size()),
                           Z_BEST_COMPRESSION);
  if (rc != Z_OK) return Internal("png: zlib compress2 failed with code " + std::to_string(rc));
  packed.resize(packed_size);

  std::string header;
  put_u32(header, static_cast<uint32_t>(width));
  put_u32(header, static_cast<uint32_t>(height));
  header += '\x08';  // bit depth
  header += '\x02';  // colour type: RGB
  header += '\0';    // compression: deflate
  header += '\0';    // filter method: adaptive (per-row filter bytes)
  header += '\0';    // no interlace

  std::string png("\x89PNG\r\n\x1a\n", 8);
  put_chunk(png, "IHDR", header);
  put_chunk(png, "IDAT", packed);
  put_chunk(png, "IEND", {});
  return png;
}

}  // namespace tandem::launcher
