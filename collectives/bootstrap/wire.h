// The bootstrap's frame format (see bootstrap.h): pure encode/decode
// functions, no sockets, so every malformed input can be unit-tested.
//
//   u32 magic 'TNDB' | u16 version | u16 type | u32 payload bytes | payload
//
// All integers are little-endian and written byte by byte (never a memcpy of
// a struct), so the layout does not depend on the compiler or the host.
//
// Cross-version rules (why they exist: a peer built from another release must
// get "rank 1 speaks protocol 2, this build speaks 1", not "garbage"):
//  - the 12-byte header is the same in every version;
//  - HELLO (type 1) starts with the u32 rank in every version, so a
//    coordinator can name a peer whose version it does not speak;
//  - REJECT (type 3) has the same payload in every version, so a rejected
//    peer can always read why.
// Decoding the header therefore checks only the magic and the length; the
// caller compares the version and then calls check_type().
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/status.h"

namespace tandem::collectives::wire {

inline constexpr char kMagic[4] = {'T', 'N', 'D', 'B'};
inline constexpr size_t kHeaderBytes = sizeof(kMagic) + sizeof(uint16_t) + sizeof(uint16_t) + sizeof(uint32_t);
static_assert(kHeaderBytes == 12, "the bootstrap frame header is pinned at 12 bytes");

inline constexpr uint32_t kMaxPayloadBytes = 16u << 20;    // any frame
inline constexpr size_t kMaxBlobBytes = 1u << 20;          // one rank's all_gather blob
inline constexpr uint32_t kMaxHandshakeBytes = 64u << 10;  // the first frame of a connection
inline constexpr size_t kMaxJobIdBytes = 1024;
inline constexpr uint32_t kMaxWorldSize = 1u << 16;

enum class FrameType : uint16_t {
  kHello = 1,     // joiner -> coordinator: Hello
  kWelcome = 2,   // coordinator -> joiner: the job formed (empty payload)
  kReject = 3,    // coordinator -> joiner: Reject; the connection then closes
  kGather = 4,    // joiner -> coordinator: Gather
  kGathered = 5,  // coordinator -> joiner: Gathered
};
std::string_view frame_type_name(uint16_t type);

struct FrameHeader {
  uint16_t version = 0;
  uint16_t type = 0;  // raw: unknown types are caught by check_type()
  uint32_t length = 0;
};

struct Hello {
  uint32_t rank = 0;
  uint32_t world_size = 0;
  std::string job_id;
};

struct Reject {
  StatusCode code = StatusCode::kFailedPrecondition;
  std::string reason;
};

struct Gather {
  uint64_t round = 0;  // the all_gather call's sequence number, to catch ranks out of step
  std::string blob;
};

struct Gathered {
  uint64_t round = 0;
  std::vector<std::string> blobs;  // by rank
};

// A whole frame: header + payload.
std::string encode_frame(uint16_t version, FrameType type, std::string_view payload);

std::string encode_payload(const Hello& hello);
std::string encode_payload(const Reject& reject);
std::string encode_payload(const Gather& gather);
std::string encode_payload(const Gathered& gathered);

// DATA_LOSS for fewer than kHeaderBytes, a bad magic or a length above
// kMaxPayloadBytes. Reads only the first kHeaderBytes of `bytes`.
Result<FrameHeader> decode_header(std::string_view bytes);
// DATA_LOSS for a type this build does not know.
Status check_type(const FrameHeader& header);

// The payload decoders want exactly the payload: a field running past its end
// or bytes left over are DATA_LOSS.
Result<Hello> decode_hello(std::string_view payload);
// The rank of a HELLO of any version (its first u32), for error messages.
Result<uint32_t> peek_hello_rank(std::string_view payload);
// An unknown status code (a newer peer's) reads as FAILED_PRECONDITION.
Result<Reject> decode_reject(std::string_view payload);
Result<Gather> decode_gather(std::string_view payload);
Result<Gathered> decode_gathered(std::string_view payload);

struct Frame {
  FrameHeader header;
  std::string payload;
};
// One complete frame from a buffer holding exactly it (header checks as
// decode_header; a short or overlong buffer is DATA_LOSS).
Result<Frame> decode_frame(std::string_view bytes);

}  // namespace tandem::collectives::wire
