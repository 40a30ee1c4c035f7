#include "collectives/bootstrap/wire.h"

#include <algorithm>

namespace tandem::collectives::wire {
namespace {

void put_u16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v & 0xff));
  out.push_back(static_cast<char>(v >> 8));
}

void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void put_bytes(std::string& out, std::string_view s) {
  // Callers bound every string far below 4 GiB (blob, job id, reason, frame).
  put_u32(out, static_cast<uint32_t>(s.size()));
  out.append(s);
}

// Bounds-checked little-endian reader; every failure names the frame and the
// field so a DATA_LOSS says where the bytes went wrong.
class Reader {
 public:
  Reader(std::string_view bytes, std::string_view what) : bytes_(bytes), what_(what) {}

  Status u32(std::string_view field, uint32_t& v) { return read_le(field, 4, v); }
  Status u64(std::string_view field, uint64_t& v) { return read_le(field, 8, v); }

  Status bytes(std::string_view field, size_t max, std::string& out) {
    uint32_t n = 0;
    TANDEM_RETURN_IF_ERROR(u32(field, n));
    if (n > left()) {
      return fail(std::string(field) + " length " + std::to_string(n) + " exceeds the " + std::to_string(left()) +
                  " payload bytes left");
    }
    if (n > max) {
      return fail(std::string(field) + " of " + std::to_string(n) + " bytes exceeds its limit of " +
                  std::to_string(max));
    }
    out.assign(bytes_.substr(pos_, n));
    pos_ += n;
    return Status::Ok();
  }

  Status finish() const {
    if (left() != 0) return fail(std::to_string(left()) + " unexpected bytes after the last field");
    return Status::Ok();
  }

  size_t left() const { return bytes_.size() - pos_; }

 private:
  template <typename T>
  Status read_le(std::string_view field, size_t n, T& v) {
    if (left() < n) {
      return fail("truncated at " + std::string(field) + " (" + std::to_string(left()) + " of " + std::to_string(n) +
                  " bytes)");
    }
    v = 0;
    for (size_t i = 0; i < n; ++i) v |= static_cast<T>(static_cast<uint8_t>(bytes_[pos_ + i])) << (8 * i);
    pos_ += n;
    return Status::Ok();
  }

  Status fail(const std::string& m) const { return DataLoss(std::string(what_) + ": " + m); }

  std::string_view bytes_;
  std::string_view what_;
  size_t pos_ = 0;
};

uint32_t get_u32(std::string_view b, size_t at) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(b[at + i])) << (8 * i);
  return v;
}

uint16_t get_u16(std::string_view b, size_t at) {
  return static_cast<uint16_t>(static_cast<uint8_t>(b[at]) | (static_cast<uint8_t>(b[at + 1]) << 8));
}

std::string hex_prefix(std::string_view b) {
  static const char kHex[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < std::min<size_t>(b.size(), 4); ++i) {
    const auto c = static_cast<uint8_t>(b[i]);
    s += kHex[c >> 4];
    s += kHex[c & 0xf];
  }
  return s;
}

}  // namespace

std::string_view frame_type_name(uint16_t type) {
  switch (static_cast<FrameType>(type)) {
    case FrameType::kHello:
      return "HELLO";
    case FrameType::kWelcome:
      return "WELCOME";
    case FrameType::kReject:
      return "REJECT";
    case FrameType::kGather:
      return "GATHER";
    case FrameType::kGathered:
      return "GATHERED";
  }
  return "unknown";
}

std::string encode_frame(uint16_t version, FrameType type, std::string_view payload) {
  TANDEM_CHECK(payload.size() <= kMaxPayloadBytes);
  std::string out;
  out.reserve(kHeaderBytes + payload.size());
  out.append(kMagic, sizeof kMagic);
  put_u16(out, version);
  put_u16(out, static_cast<uint16_t>(type));
  put_u32(out, static_cast<uint32_t>(payload.size()));
  out.append(payload);
  return out;
}

std::string encode_payload(const Hello& hello) {
  std::string out;
  put_u32(out, hello.rank);  // first in every version (see wire.h)
  put_u32(out, hello.world_size);
  put_bytes(out, hello.job_id);
  return out;
}

std::string encode_payload(const Reject& reject) {
  std::string out;
  put_u32(out, static_cast<uint32_t>(reject.code));
  put_bytes(out, reject.reason);
  return out;
}

std::string encode_payload(const Gather& gather) {
  std::string out;
  out.reserve(16 + gather.blob.size());
  put_u64(out, gather.round);
  put_bytes(out, gather.blob);
  return out;
}

std::string encode_payload(const Gathered& gathered) {
  size_t total = 12;
  for (const auto& b : gathered.blobs) total += 4 + b.size();
  std::string out;
  out.reserve(total);
  put_u64(out, gathered.round);
  put_u32(out, static_cast<uint32_t>(gathered.blobs.size()));
  for (const auto& b : gathered.blobs) put_bytes(out, b);
  return out;
}

Result<FrameHeader> decode_header(std::string_view bytes) {
  if (bytes.size() < kHeaderBytes) {
    return DataLoss("bootstrap frame: truncated header (" + std::to_string(bytes.size()) + " of " +
                    std::to_string(kHeaderBytes) + " bytes)");
  }
  if (bytes.substr(0, 4) != std::string_view(kMagic, 4)) {
    return DataLoss("bootstrap frame: bad magic 0x" + hex_prefix(bytes) + " (not a tandem bootstrap peer?)");
  }
  FrameHeader h;
  h.version = get_u16(bytes, 4);
  h.type = get_u16(bytes, 6);
  h.length = get_u32(bytes, 8);
  if (h.length > kMaxPayloadBytes) {
    return DataLoss("bootstrap frame: payload of " + std::to_string(h.length) + " bytes exceeds the 16 MiB limit");
  }
  return h;
}

Status check_type(const FrameHeader& header) {
  if (frame_type_name(header.type) == "unknown") {
    return DataLoss("bootstrap frame: unknown type " + std::to_string(header.type));
  }
  return Status::Ok();
}

Result<Hello> decode_hello(std::string_view payload) {
  Reader r(payload, "bootstrap HELLO");
  Hello h;
  TANDEM_RETURN_IF_ERROR(r.u32("rank", h.rank));
  TANDEM_RETURN_IF_ERROR(r.u32("world size", h.world_size));
  TANDEM_RETURN_IF_ERROR(r.bytes("job id", kMaxJobIdBytes, h.job_id));
  TANDEM_RETURN_IF_ERROR(r.finish());
  return h;
}

Result<uint32_t> peek_hello_rank(std::string_view payload) {
  Reader r(payload, "bootstrap HELLO");
  uint32_t rank = 0;
  TANDEM_RETURN_IF_ERROR(r.u32("rank", rank));
  return rank;
}

Result<Reject> decode_reject(std::string_view payload) {
  Reader r(payload, "bootstrap REJECT");
  uint32_t code = 0;
  Reject rej;
  TANDEM_RETURN_IF_ERROR(r.u32("code", code));
  TANDEM_RETURN_IF_ERROR(r.bytes("reason", kMaxPayloadBytes, rej.reason));
  TANDEM_RETURN_IF_ERROR(r.finish());
  // OK is no reason to reject, and codes past kInternal are a newer peer's.
  const bool known = code > 0 && code <= static_cast<uint32_t>(StatusCode::kInternal);
  rej.code = known ? static_cast<StatusCode>(code) : StatusCode::kFailedPrecondition;
  return rej;
}

Result<Gather> decode_gather(std::string_view payload) {
  Reader r(payload, "bootstrap GATHER");
  Gather g;
  TANDEM_RETURN_IF_ERROR(r.u64("round", g.round));
  TANDEM_RETURN_IF_ERROR(r.bytes("blob", kMaxBlobBytes, g.blob));
  TANDEM_RETURN_IF_ERROR(r.finish());
  return g;
}

Result<Gathered> decode_gathered(std::string_view payload) {
  Reader r(payload, "bootstrap GATHERED");
  Gathered g;
  uint32_t count = 0;
  TANDEM_RETURN_IF_ERROR(r.u64("round", g.round));
  TANDEM_RETURN_IF_ERROR(r.u32("blob count", count));
  // Each blob takes at least its 4-byte length, so a count the payload cannot
  // hold is caught here, before it sizes any allocation.
  if (count > kMaxWorldSize || count > r.left() / 4) {
    return DataLoss("bootstrap GATHERED: blob count " + std::to_string(count) + " cannot fit in " +
                    std::to_string(r.left()) + " payload bytes");
  }
  g.blobs.resize(count);
  for (auto& b : g.blobs) TANDEM_RETURN_IF_ERROR(r.bytes("blob", kMaxBlobBytes, b));
  TANDEM_RETURN_IF_ERROR(r.finish());
  return g;
}

Result<Frame> decode_frame(std::string_view bytes) {
  TANDEM_ASSIGN_OR_RETURN(FrameHeader h, decode_header(bytes));
  const size_t have = bytes.size() - kHeaderBytes;
  if (have < h.length) {
    return DataLoss("bootstrap frame: truncated payload (" + std::to_string(have) + " of " + std::to_string(h.length) +
                    " bytes)");
  }
  if (have > h.length) {
    return DataLoss("bootstrap frame: " + std::to_string(have - h.length) + " bytes after the payload");
  }
  return Frame{h, std::string(bytes.substr(kHeaderBytes))};
}

}  // namespace tandem::collectives::wire
