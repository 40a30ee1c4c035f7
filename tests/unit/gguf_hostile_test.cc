// Hostile GGUF files: each gives an error that starts with the file's name
// and says what is wrong, never a crash, and nothing is sized from a claimed
// count (the sanitizer builds would catch a wild read; a 2^60-element
// allocation would abort).
#include <gtest/gtest.h>

#include <string>

#include "runtime/formats/gguf.h"
#include "tests/unit/gguf_test_util.h"

namespace tandem {
namespace {

using testing::GgufBytes;

constexpr uint64_t kHuge = 1ull << 60;

// Parses `g` and expects an error of `code` whose message starts with the
// source and contains `cause`.
void expect_error(const GgufBytes& g, StatusCode code, const std::string& cause) {
  auto f = gguf::parse(g.span(), "bad.gguf");
  ASSERT_FALSE(f.ok()) << "parsed; expected: " << cause;
  const Status& s = f.status();
  EXPECT_EQ(s.code(), code) << s.to_string();
  EXPECT_EQ(s.message().rfind("bad.gguf: ", 0), 0u) << s.message();
  EXPECT_NE(s.message().find(cause), std::string::npos) << s.message();
}

TEST(GgufHostile, BadMagic) {
  GgufBytes g;
  g.bytes = "GGML";
  g.u32(3).u64(0).u64(0);
  expect_error(g, StatusCode::kDataLoss, "not a GGUF file");
  expect_error(GgufBytes{}, StatusCode::kDataLoss, "not a GGUF file");
}

TEST(GgufHostile, UnsupportedVersions) {
  GgufBytes v1;
  v1.header(1, 0, 0);
  expect_error(v1, StatusCode::kUnimplemented, "GGUF version 1");
  GgufBytes v4;
  v4.header(4, 0, 0);
  expect_error(v4, StatusCode::kUnimplemented, "GGUF version 4 is not supported");
  GgufBytes big_endian;
  big_endian.header(0x03000000, 0, 0);
  expect_error(big_endian, StatusCode::kUnimplemented, "big-endian");
}

TEST(GgufHostile, AbsurdCounts) {
  GgufBytes tensors;
  tensors.header(3, kHuge, 0);
  expect_error(tensors, StatusCode::kDataLoss, "claims 1152921504606846976 tensors");
  GgufBytes kvs;
  kvs.header(3, 0, kHuge);
  expect_error(kvs, StatusCode::kDataLoss, "claims 1152921504606846976 metadata entries");
  GgufBytes array;
  array.header(3, 0, 1).key("k", 9).u32(4).u64(kHuge).u32(1);
  expect_error(array, StatusCode::kDataLoss, "claims 1152921504606846976 u32 elements");
  GgufBytes string_array;
  string_array.header(3, 0, 1).key("k", 9).u32(8).u64(3).str("a");
  expect_error(string_array, StatusCode::kDataLoss, "claims 3 string elements");
}

TEST(GgufHostile, StringLengthsBeyondTheFile) {
  GgufBytes key;
  key.header(3, 0, 1).u64(~0ull).bytes += std::string(32, 'x');
  expect_error(key, StatusCode::kDataLoss, "a metadata key at byte 24 claims 18446744073709551615 bytes");
  GgufBytes value;
  value.header(3, 0, 1).key("general.name", 8).u64(1000).bytes += "short";
  expect_error(value, StatusCode::kDataLoss, "the string value of general.name");
  GgufBytes name;
  name.header(3, 1, 0).u64(kHuge).bytes += std::string(40, 'x');
  expect_error(name, StatusCode::kDataLoss, "a tensor name");
}

TEST(GgufHostile, UnknownValueTypesAndDeepArrays) {
  GgufBytes type;
  type.header(3, 0, 1).key("k", 13).u64(0);
  expect_error(type, StatusCode::kDataLoss, "metadata k has unknown value type 13");
  GgufBytes deep;  // array of arrays of arrays
  deep.header(3, 0, 1).key("k", 9).u32(9).u64(1).u32(9).u64(1).u32(0).u64(1).u8(1);
  expect_error(deep, StatusCode::kUnimplemented, "nests arrays more than two deep");
}

TEST(GgufHostile, DuplicateKeysAndTensors) {
  GgufBytes keys;
  keys.header(3, 0, 2).key("a", 4).u32(1).key("a", 4).u32(2);
  expect_error(keys, StatusCode::kDataLoss, "metadata key a appears twice");
  GgufBytes tensors;
  tensors.header(3, 2, 0).tensor("t", {8}, 0, 0).tensor("t", {8}, 0, 32).pad_to(32);
  tensors.bytes.append(64, '\0');
  expect_error(tensors, StatusCode::kDataLoss, "tensor t appears twice");
}

TEST(GgufHostile, EmptyNames) {
  GgufBytes key;
  key.header(3, 0, 1).key("", 4).u32(1);
  expect_error(key, StatusCode::kDataLoss, "a metadata key at byte 24 is empty");
  GgufBytes tensor;
  tensor.header(3, 1, 0).tensor("", {8}, 0, 0);
  expect_error(tensor, StatusCode::kDataLoss, "a tensor name at byte 24 is empty");
}

TEST(GgufHostile, BadAlignment) {
  for (const uint32_t a : {0u, 48u, 1u << 30}) {
    GgufBytes g;
    g.header(3, 0, 1).key("general.alignment", 4).u32(a);
    expect_error(g, StatusCode::kOutOfRange, "general.alignment = " + std::to_string(a) + " is not a power of two");
  }
  GgufBytes wrong_type;
  wrong_type.header(3, 0, 1).key("general.alignment", 8).str("32");
  expect_error(wrong_type, StatusCode::kInvalidArgument, "general.alignment holds string");
}

TEST(GgufHostile, BadDimensions) {
  GgufBytes five;
  five.header(3, 1, 0).tensor("t", {1, 1, 1, 1, 1}, 0, 0);
  expect_error(five, StatusCode::kOutOfRange, "tensor t has 5 dimensions");
  GgufBytes none;
  none.header(3, 1, 0).str("t").u32(0).u32(0).u64(0).u64(0).u64(0);
  expect_error(none, StatusCode::kOutOfRange, "tensor t has 0 dimensions");
  GgufBytes zero;
  zero.header(3, 1, 0).tensor("t", {8, 0}, 0, 0);
  expect_error(zero, StatusCode::kOutOfRange, "ne[1] = 0");
  GgufBytes negative;
  negative.header(3, 1, 0).tensor("t", {~0ull}, 0, 0);
  expect_error(negative, StatusCode::kOutOfRange, "ne[0] = 18446744073709551615");
  GgufBytes overflow;  // 2^32 * 2^32 * 4 wraps to 0 in 64 bits
  overflow.header(3, 1, 0).tensor("t", {1ull << 32, 1ull << 32, 4}, 0, 0);
  expect_error(overflow, StatusCode::kOutOfRange, "multiply past 2^63");
  GgufBytes bytes_overflow;  // 2^62 elements fit, their 2^64 F32 bytes do not
  bytes_overflow.header(3, 1, 0).tensor("t", {1ull << 31, 1ull << 31}, 0, 0);
  expect_error(bytes_overflow, StatusCode::kOutOfRange, "byte size overflows");
}

TEST(GgufHostile, UnknownOrPartialTypes) {
  GgufBytes q5k;
  q5k.header(3, 1, 0).tensor("blk.0.attn_q.weight", {256}, 13, 0);
  expect_error(q5k, StatusCode::kUnimplemented, "blk.0.attn_q.weight has ggml type 13 (Q5_K)");
  GgufBytes unknown;
  unknown.header(3, 1, 0).tensor("t", {256}, 99, 0);
  expect_error(unknown, StatusCode::kUnimplemented, "ggml type 99 (?)");
  GgufBytes partial;
  partial.header(3, 1, 0).tensor("t", {33}, 8, 0);
  expect_error(partial, StatusCode::kDataLoss, "rows of 33 elements, not a whole number of its 32-element blocks");
}

TEST(GgufHostile, TensorPlacement) {
  GgufBytes past_end;
  past_end.header(3, 1, 0).tensor("t", {8}, 0, 0).pad_to(32);
  past_end.bytes.append(31, '\0');  // one byte short of 8 floats
  expect_error(past_end, StatusCode::kDataLoss, "tensor t (32 bytes at data offset 0) runs past the end");
  GgufBytes far_offset;  // offset + bytes would wrap around 2^64
  far_offset.header(3, 1, 0).tensor("t", {8}, 0, ~0ull - 31).pad_to(32);
  far_offset.bytes.append(32, '\0');
  expect_error(far_offset, StatusCode::kDataLoss, "runs past the end");
  GgufBytes misaligned;
  misaligned.header(3, 1, 0).tensor("t", {8}, 0, 4).pad_to(32);
  misaligned.bytes.append(64, '\0');
  expect_error(misaligned, StatusCode::kDataLoss, "data offset 4, not a multiple of the alignment 32");
  GgufBytes overlap;  // "b" starts inside "a"
  overlap.header(3, 2, 0).tensor("a", {16}, 0, 0).tensor("b", {8}, 0, 32).pad_to(32);
  overlap.bytes.append(64, '\0');
  expect_error(overlap, StatusCode::kDataLoss, "tensors a and b overlap");
  GgufBytes no_data;  // the tensor infos end the file
  no_data.header(3, 1, 0).tensor("t", {8}, 0, 0);
  expect_error(no_data, StatusCode::kDataLoss, "truncated: the data section would start at byte");
}

TEST(GgufHostile, EveryTruncationIsAnError) {
  // A small valid file whose last tensor ends the file, so every proper
  // prefix lacks bytes something needs.
  GgufBytes g;
  g.header(3, 2, 3);
  g.key("general.architecture", 8).str("llama");
  g.key("tokenizer.ggml.tokens", 9).u32(8).u64(2).str("a").str("bc");
  g.key("k.f32s", 9).u32(6).u64(2).f32(1.0f).f32(2.0f);
  g.tensor("a", {8}, 0, 0).tensor("b", {32}, 8, 32).pad_to(32);
  g.bytes.append(32 + 34, '\x01');
  ASSERT_TRUE(gguf::parse(g.span(), "whole.gguf").ok());
  for (size_t n = 0; n < g.bytes.size(); ++n) {
    auto f = gguf::parse(g.span().first(n), "cut.gguf");
    ASSERT_FALSE(f.ok()) << "a prefix of " << n << " bytes parsed";
    EXPECT_EQ(f.status().message().rfind("cut.gguf: ", 0), 0u) << f.status().message();
  }
}

}  // namespace
}  // namespace tandem
