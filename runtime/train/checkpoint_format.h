// The on-disk layout of a checkpoint shard (checkpoint.h): a fixed 96-byte
// little-endian header, then the float32 arrays params, adam_m, adam_v back
// to back. Exposed so tests can forge hostile files; everyone else goes
// through checkpoint.h.
//
// The header carries two CRC-32Cs: one of its own bytes before the field
// (so a flipped step or tp is reported as corruption, not as another job's
// checkpoint) and one of the payload. Magic and version come first and are
// checked before the header checksum, so a file of another format or version
// is named as such even if its header is laid out differently.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace tandem::train {

inline constexpr char kShardMagic[8] = {'T', 'N', 'D', 'M', 'C', 'K', 'P', 'T'};

struct ShardFileHeader {
  char magic[8];
  uint32_t version;       // kCheckpointVersion
  uint32_t header_bytes;  // sizeof(ShardFileHeader), a second guard on the layout
  int64_t step;
  int32_t rank;
  int32_t world;
  int32_t tp;
  int32_t dp;
  uint64_t job_hash;
  uint64_t seed;
  int64_t tokens_seen;
  uint64_t n_params;  // float32 counts of the three arrays, in file order
  uint64_t n_adam_m;
  uint64_t n_adam_v;
  uint32_t payload_crc32c;  // of the arrays' bytes
  uint32_t header_crc32c;   // of the header's bytes before this field
};

static_assert(std::endian::native == std::endian::little, "shard headers are read and written with memcpy");
static_assert(std::is_trivially_copyable_v<ShardFileHeader>);
static_assert(sizeof(float) == 4);
static_assert(sizeof(ShardFileHeader) == 96, "the shard header is a wire format: change kCheckpointVersion");
static_assert(offsetof(ShardFileHeader, version) == 8);
static_assert(offsetof(ShardFileHeader, step) == 16);
static_assert(offsetof(ShardFileHeader, rank) == 24);
static_assert(offsetof(ShardFileHeader, dp) == 36);
static_assert(offsetof(ShardFileHeader, job_hash) == 40);
static_assert(offsetof(ShardFileHeader, tokens_seen) == 56);
static_assert(offsetof(ShardFileHeader, n_params) == 64);
static_assert(offsetof(ShardFileHeader, n_adam_v) == 80);
static_assert(offsetof(ShardFileHeader, payload_crc32c) == 88);
static_assert(offsetof(ShardFileHeader, header_crc32c) == 92);

// The CRC-32C a well-formed header stores in header_crc32c.
uint32_t shard_header_checksum(const ShardFileHeader& header);

}  // namespace tandem::train
