// safetensors: files built byte by byte from the format's description, the
// writer's round trip, hostile files (each a clear error naming the file and
// the tensor), and the sharded index.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>

#include "runtime/formats/safetensors.h"
#include "runtime/formats/safetensors_checkpoint.h"
#include "runtime/formats/safetensors_writer.h"
#include "tests/unit/test_paths.h"

namespace tandem {
namespace {

// 8-byte little-endian header length, the header, the data section.
std::string file_bytes(const std::string& header, const std::string& data) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((header.size() >> (8 * i)) & 0xff));
  return out + header + data;
}

Result<SafetensorsFile> parse(const std::string& bytes) {
  return parse_safetensors("m.safetensors", reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

std::string f32_bytes(std::initializer_list<float> v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), std::data(v), s.size());
  return s;
}

TEST(Safetensors, ParsesAFileBuiltFromTheSpec) {
  // a: F32 [2, 2] at [0, 16); b: BF16 [3] at [16, 22): 1.0, -2.0, 0.5.
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]},)"
      R"("a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";
  const std::string data = f32_bytes({1.5f, -2.0f, 3.25f, 0.0f}) + std::string("\x80\x3f\x00\xc0\x00\x3f", 6);
  const std::string bytes = file_bytes(header, data);
  auto file = parse(bytes);
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  ASSERT_EQ(file->tensors.size(), 2u);
  EXPECT_EQ(file->metadata.at("format"), "pt");
  const SafetensorsTensor& a = file->tensors.at("a");
  EXPECT_EQ(a.dtype, "F32");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(a.bytes, 16u);
  EXPECT_EQ(reinterpret_cast<const char*>(a.data), bytes.data() + 8 + header.size());
  float x[4];
  std::memcpy(x, a.data, 16);
  EXPECT_EQ(x[2], 3.25f);
  const SafetensorsTensor& b = file->tensors.at("b");
  EXPECT_EQ(b.dtype, "BF16");
  EXPECT_EQ(b.bytes, 6u);
  EXPECT_EQ(b.data[1], 0x3f);  // 1.0 in bf16 is 0x3f80, little-endian
}

TEST(Safetensors, WriterRoundTrip) {
  testing::TempDir dir;
  const std::string w = f32_bytes({1, 2, 3, 4, 5, 6});
  const std::string h("\x00\x3c\x00\xc0", 4);  // f16 1.0, -2.0
  const std::string i64(16, '\x07');
  ASSERT_TRUE(write_safetensors(dir.file("x.safetensors"),
                                {{"w", "F32", {2, 3}, w}, {"h", "F16", {2}, h}, {"ids", "I64", {2}, i64}},
                                {{"format", "pt"}})
                  .ok());
  auto file = read_safetensors(dir.file("x.safetensors"));
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  EXPECT_EQ(file->metadata.at("format"), "pt");
  const auto& t = file->tensors;
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(t.at("w").data), t.at("w").bytes), w);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(t.at("h").data), t.at("h").bytes), h);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(t.at("ids").data), t.at("ids").bytes), i64);
  EXPECT_EQ(t.at("w").shape, (std::vector<int64_t>{2, 3}));
  // The header is padded so the data section starts 8-aligned.
  const std::string raw = testing::read_file(dir.file("x.safetensors"));
  uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  // The model mapping takes F16 and refuses I64 by name.
  EXPECT_EQ(*safetensors_source_dtype("F16", "x: tensor h"), SourceDType::kF16);
  const auto bad = safetensors_source_dtype("I64", "x: tensor ids");
  EXPECT_EQ(bad.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(bad.status().message().find("tensor ids"), std::string::npos);
}

TEST(Safetensors, WriterRefusesBytesThatDisagreeWithTheShape) {
  testing::TempDir dir;
  const std::string w = f32_bytes({1, 2, 3});
  const Status s = write_safetensors(dir.file("x.safetensors"), {{"w", "F32", {2, 2}, w}});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("tensor w"), std::string::npos);
}

struct Hostile {
  const char* what;
  std::string bytes;
  StatusCode code;
  const char* names;  // a word the message must hold
};

TEST(Safetensors, HostileFilesGiveClearErrors) {
  const std::string ok_data(16, '\0');
  std::string long_header = file_bytes("{}", "");
  long_header[0] = 100;  // the length says 100 bytes; 2 follow
  const Hostile cases[] = {
      {"too short", std::string("\x02\x00", 2), StatusCode::kDataLoss, "too short"},
      {"header past the end", long_header, StatusCode::kDataLoss, "past the end"},
      {"not JSON", file_bytes("{\"a\":", ok_data), StatusCode::kDataLoss, "not valid JSON"},
      {"not an object", file_bytes("[1,2]", ok_data), StatusCode::kDataLoss, "not a JSON object"},
      {"trailing bytes", file_bytes("{} x", ok_data), StatusCode::kDataLoss, "JSON"},
      {"offsets past EOF",
       file_bytes(R"({"a":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}})", ok_data),
       StatusCode::kDataLoss, "tensor a"},
      {"overlap",
       file_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                  R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                  ok_data),
       StatusCode::kDataLoss, "overlaps"},
      {"size mismatch",
       file_bytes(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", ok_data),
       StatusCode::kDataLoss, "tensor a"},
      {"product overflow",
       file_bytes(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,2],"data_offsets":[0,0]}})", ok_data),
       StatusCode::kDataLoss, "overflows"},
      {"bytes overflow",
       file_bytes(R"({"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,0]}})", ok_data),
       StatusCode::kDataLoss, "overflows"},
      {"begin after end",
       file_bytes(R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[8,4]}})", ok_data),
       StatusCode::kDataLoss, "tensor a"},
      {"negative dim",
       file_bytes(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", ok_data),
       StatusCode::kDataLoss, "negative"},
      {"duplicate name",
       file_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                  R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                  ok_data),
       StatusCode::kDataLoss, "twice"},
      {"unknown dtype",
       file_bytes(R"({"a":{"dtype":"Q9","shape":[1],"data_offsets":[0,4]}})", ok_data),
       StatusCode::kUnimplemented, "Q9"},
      {"missing offsets", file_bytes(R"({"a":{"dtype":"F32","shape":[1]}})", ok_data),
       StatusCode::kDataLoss, "tensor a"},
      {"two dtypes",
       file_bytes(R"({"a":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}})", ok_data),
       StatusCode::kDataLoss, "tensor a"},
      {"shape of strings",
       file_bytes(R"({"a":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}})", ok_data),
       StatusCode::kDataLoss, "tensor a"},
      {"float offset",
       file_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4.0]}})", ok_data),
       StatusCode::kDataLoss, "tensor a"},
      {"three offsets",
       file_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", ok_data),
       StatusCode::kDataLoss, "tensor a"},
      {"deep nesting", file_bytes(std::string(100000, '['), ok_data), StatusCode::kDataLoss, "object"},
      {"metadata not string", file_bytes(R"({"__metadata__":{"k":1}})", ok_data), StatusCode::kDataLoss,
       "__metadata__"},
  };
  for (const Hostile& c : cases) {
    const auto r = parse(c.bytes);
    ASSERT_FALSE(r.ok()) << c.what;
    EXPECT_EQ(r.status().code(), c.code) << c.what << ": " << r.status().to_string();
    EXPECT_EQ(r.status().message().rfind("m.safetensors", 0), 0u) << c.what << ": " << r.status().to_string();
    EXPECT_NE(r.status().message().find(c.names), std::string::npos) << c.what << ": " << r.status().to_string();
  }
}

TEST(Safetensors, HeaderLongerThanTheFormatAllows) {
  // A sparse file past the 100 MB limit: the length fits the file, yet is refused
  // before any of the header is read.
  testing::TempDir dir;
  const uint64_t n = kSafetensorsMaxHeaderBytes + 1;
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  testing::write_file(dir.file("big.safetensors"), bytes);
  ASSERT_EQ(::truncate(dir.file("big.safetensors").c_str(), static_cast<off_t>(n + 64)), 0);
  const auto r = read_safetensors(dir.file("big.safetensors"));
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << r.status().to_string();
  EXPECT_NE(r.status().message().find("limit"), std::string::npos) << r.status().to_string();
}

TEST(Safetensors, EveryTruncationAndByteFlipIsAnErrorOrAValidFile) {
  const std::string header =
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F16","shape":[2],"data_offsets":[8,12]}})";
  const std::string bytes = file_bytes(header, std::string(12, '\x01'));
  ASSERT_TRUE(parse(bytes).ok());
  for (size_t n = 0; n < bytes.size(); ++n) {
    const auto r = parse(bytes.substr(0, n));
    EXPECT_FALSE(r.ok()) << "truncated to " << n;
  }
  for (size_t i = 0; i < 8 + header.size(); ++i) {
    std::string b = bytes;
    b[i] = static_cast<char>(b[i] ^ 0x5a);
    const auto r = parse(b);  // must not crash; when it parses, views stay inside the bytes
    if (!r.ok()) continue;
    for (const auto& [name, t] : r->tensors) {
      EXPECT_GE(reinterpret_cast<const char*>(t.data), b.data() + 8);
      EXPECT_LE(reinterpret_cast<const char*>(t.data) + t.bytes, b.data() + b.size()) << name;
    }
  }
}

TEST(SafetensorsCheckpoint, ShardedIndex) {
  testing::TempDir dir;
  const std::string a = f32_bytes({1, 2}), b = f32_bytes({3});
  ASSERT_TRUE(write_safetensors(dir.file("model-00001-of-00002.safetensors"), {{"x", "F32", {2}, a}}).ok());
  ASSERT_TRUE(write_safetensors(dir.file("model-00002-of-00002.safetensors"),
                                {{"y", "F32", {1}, b}, {"unlisted", "F32", {1}, b}})
                  .ok());
  testing::write_file(dir.file("model.safetensors.index.json"),
                      R"({"metadata":{"total_size":12},"weight_map":{"x":"model-00001-of-00002.safetensors",)"
                      R"("y":"model-00002-of-00002.safetensors"}})");
  auto ckpt = read_safetensors_checkpoint(dir.path());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().to_string();
  EXPECT_EQ(ckpt->tensors.size(), 2u);  // "unlisted" is not in the index
  EXPECT_EQ(ckpt->mappings.size(), 2u);
  float y = 0;
  std::memcpy(&y, ckpt->tensors.at("y").tensor.data, 4);
  EXPECT_EQ(y, 3.0f);
  EXPECT_NE(ckpt->tensors.at("x").file.find("model-00001-of-00002"), std::string::npos);
}

Status index_error(const std::string& weight_map) {
  testing::TempDir dir;
  const std::string a = f32_bytes({1});
  if (!write_safetensors(dir.file("s1.safetensors"), {{"x", "F32", {1}, a}}).ok()) return Internal("setup");
  testing::write_file(dir.file("model.safetensors.index.json"), "{\"weight_map\":" + weight_map + "}");
  return read_safetensors_checkpoint(dir.path()).status();
}

TEST(SafetensorsCheckpoint, IndexErrors) {
  Status s = index_error(R"({"x":"s1.safetensors","y":"s2.safetensors"})");
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.to_string();
  EXPECT_NE(s.message().find("s2.safetensors"), std::string::npos);
  s = index_error(R"({"x":"../s1.safetensors"})");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
  EXPECT_NE(s.message().find("not a plain file name"), std::string::npos);
  s = index_error(R"({"x":"/etc/passwd"})");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
  s = index_error(R"({"z":"s1.safetensors"})");
  EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s.to_string();
  EXPECT_NE(s.message().find("tensor z"), std::string::npos);
  s = index_error(R"(["x"])");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
  s = index_error(R"({"x":7})");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
  testing::TempDir empty;
  EXPECT_EQ(read_safetensors_checkpoint(empty.path()).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace tandem
