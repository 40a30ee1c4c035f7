// CRC-32C (Castagnoli, the iSCSI / ext4 / leveldb checksum) in portable C++:
// checkpoints and other files tandem writes carry it so a reader can tell a
// corrupt file from a valid one. Slicing-by-8, about 1-2 GB/s on one core,
// so a checkpoint's checksum costs far less than writing it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tandem {

// The CRC of `data` appended to bytes whose CRC was `crc` (0 for none):
// crc32c_extend(crc32c(a), b) == crc32c(a + b), so large buffers can be
// checksummed in pieces as they are written or read.
uint32_t crc32c_extend(uint32_t crc, const void* data, size_t bytes);
inline uint32_t crc32c(const void* data, size_t bytes) { return crc32c_extend(0, data, bytes); }

}  // namespace tandem
