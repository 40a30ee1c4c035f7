// GGUF parsing against files built byte by byte from the spec, the typed
// metadata accessors, and the writer's round trip through the parser.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "runtime/formats/gguf.h"
#include "runtime/formats/gguf_writer.h"
#include "tests/unit/gguf_test_util.h"
#include "tests/unit/test_paths.h"

namespace tandem {
namespace {

using gguf::GgmlType;
using gguf::ValueType;
using testing::as_span;
using testing::GgufBytes;

bool mentions(const Status& s, const std::string& text) {
  return s.message().find(text) != std::string::npos;
}

// One key of every value type, an array of each kind the accessors read, a
// nested array, and two tensors: "a" F32 ne [4, 2] at offset 0 and "b" Q8_0
// ne [32] at offset 32, the data section holding 32 + 34 bytes.
struct HandBuilt {
  GgufBytes g;
  size_t data_start = 0;
  HandBuilt(uint32_t version = 3) {
    g.header(version, 2, 19);
    g.key("k.u8", 0).u8(200);
    g.key("k.i8", 1).u8(0xF6);  // -10
    g.key("k.u16", 2).u8(0x34).u8(0x12);
    g.key("k.i16", 3).u8(0xFE).u8(0xFF);  // -2
    g.key("k.u32", 4).u32(4000000000u);
    g.key("k.i32", 5).i32(-7);
    g.key("k.f32", 6).f32(0.25f);
    g.key("k.bool", 7).u8(1);
    g.key("k.string", 8).str("llama");
    g.key("k.u64", 10).u64(1ull << 40);
    g.key("k.i64", 11).u64(static_cast<uint64_t>(-5ll));
    double d = 1.5;
    uint64_t d_bits;
    std::memcpy(&d_bits, &d, 8);
    g.key("k.f64", 12).u64(d_bits);
    g.key("k.u64_big", 10).u64(1ull << 63);
    g.key("k.strings", 9).u32(8).u64(3).str("a").str("").str("\xE2\x96\x81the");
    g.key("k.floats", 9).u32(6).u64(2).f32(1.0f).f32(-2.5f);
    g.key("k.ints", 9).u32(5).u64(3).i32(1).i32(-1).i32(70000);
    g.key("k.bytes", 9).u32(0).u64(2).u8(3).u8(255);
    g.key("k.big_ints", 9).u32(11).u64(1).u64(1ull << 40);
    // An array of two arrays of u8.
    g.key("k.nested", 9).u32(9).u64(2).u32(0).u64(1).u8(7).u32(0).u64(2).u8(8).u8(9);
    g.tensor("a", {4, 2}, 0, 0);
    g.tensor("b", {32}, 8, 32);
    g.pad_to(32);
    data_start = g.bytes.size();
    for (int i = 0; i < 8; ++i) g.f32(static_cast<float>(i) + 0.5f);
    for (int i = 0; i < 34; ++i) g.u8(static_cast<uint8_t>(i));
  }
};

TEST(Gguf, ParsesAFileBuiltFromTheSpec) {
  HandBuilt h;
  auto f = gguf::parse(h.g.span(), "hand.gguf");
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  EXPECT_EQ(f->version, 3u);
  EXPECT_EQ(f->alignment, 32u);
  EXPECT_EQ(f->data_offset, h.data_start);
  ASSERT_EQ(f->metadata.size(), 19u);
  EXPECT_EQ(f->metadata[0].key, "k.u8");  // file order kept

  ASSERT_EQ(f->tensors.size(), 2u);
  const gguf::TensorInfo* a = f->find_tensor("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->type, GgmlType::kF32);
  EXPECT_EQ(a->ne, (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(a->bytes, 32u);
  EXPECT_EQ(a->data, h.g.span().data() + h.data_start);
  float first;
  std::memcpy(&first, a->data, 4);
  EXPECT_EQ(first, 0.5f);
  const gguf::TensorInfo* b = f->find_tensor("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->type, GgmlType::kQ8_0);
  EXPECT_EQ(b->bytes, 34u);  // one block: f16 scale + 32 int8
  EXPECT_EQ(b->offset, 32u);
  EXPECT_EQ(b->data[33], 33);
  EXPECT_EQ(f->find_tensor("c"), nullptr);
}

TEST(Gguf, TypedAccessorsDecodeEveryScalarType) {
  HandBuilt h;
  auto f = gguf::parse(h.g.span(), "hand.gguf");
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  EXPECT_EQ(*f->get_int("k.u8"), 200);
  EXPECT_EQ(*f->get_int("k.i8"), -10);
  EXPECT_EQ(*f->get_int("k.u16"), 0x1234);
  EXPECT_EQ(*f->get_int("k.i16"), -2);
  EXPECT_EQ(*f->get_int("k.u32"), 4000000000ll);
  EXPECT_EQ(*f->get_int("k.i32"), -7);
  EXPECT_EQ(*f->get_int("k.u64"), 1ll << 40);
  EXPECT_EQ(*f->get_int("k.i64"), -5);
  EXPECT_EQ(*f->get_f32("k.f32"), 0.25f);
  EXPECT_EQ(*f->get_f32("k.f64"), 1.5f);
  EXPECT_TRUE(*f->get_bool("k.bool"));
  EXPECT_EQ(*f->get_string("k.string"), "llama");
  EXPECT_EQ(*f->get_string_array("k.strings"), (std::vector<std::string>{"a", "", "\xE2\x96\x81the"}));
  EXPECT_EQ(*f->get_f32_array("k.floats"), (std::vector<float>{1.0f, -2.5f}));
  EXPECT_EQ(*f->get_i32_array("k.ints"), (std::vector<int32_t>{1, -1, 70000}));
  EXPECT_EQ(*f->get_i32_array("k.bytes"), (std::vector<int32_t>{3, 255}));
  const gguf::Value* nested = f->find("k.nested");
  ASSERT_NE(nested, nullptr);
  EXPECT_EQ(nested->element_type, ValueType::kArray);
  EXPECT_EQ(nested->count, 2u);
  EXPECT_EQ(nested->raw.size(), 2 * 12 + 3u);
}

TEST(Gguf, AccessorsNameTheKeyOnAbsenceAndWrongType) {
  HandBuilt h;
  auto f = gguf::parse(h.g.span(), "hand.gguf");
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  auto absent = f->get_int("llama.block_count");
  EXPECT_EQ(absent.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(mentions(absent.status(), "hand.gguf: metadata key llama.block_count is absent"));
  auto wrong = f->get_int("k.string");
  EXPECT_EQ(wrong.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(mentions(wrong.status(), "k.string holds string, not an integer")) << wrong.status().message();
  EXPECT_EQ(f->get_string("k.u8").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(f->get_f32("k.i32").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(f->get_bool("k.u8").status().code(), StatusCode::kInvalidArgument);
  auto wrong_array = f->get_string_array("k.floats");
  EXPECT_TRUE(mentions(wrong_array.status(), "holds array of f32, not an array of strings"));
  EXPECT_EQ(f->get_f32_array("k.ints").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(f->get_i32_array("k.strings").status().code(), StatusCode::kInvalidArgument);
  // Values that exist but do not fit the accessor's type.
  auto big = f->get_int("k.u64_big");
  EXPECT_EQ(big.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(mentions(big.status(), "beyond int64"));
  auto big_elems = f->get_i32_array("k.big_ints");
  EXPECT_TRUE(mentions(big_elems.status(), "does not fit in int32"));
}

TEST(Gguf, VersionTwoReadsLikeThree) {
  HandBuilt h(2);
  auto f = gguf::parse(h.g.span(), "v2.gguf");
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  EXPECT_EQ(f->version, 2u);
  EXPECT_EQ(f->tensors.size(), 2u);
}

TEST(Gguf, AlignmentKeyMovesTheDataSection) {
  GgufBytes g;
  g.header(3, 1, 1).key("general.alignment", 4).u32(256);
  g.tensor("w", {8}, 0, 0);
  g.pad_to(256);
  const size_t start = g.bytes.size();
  for (int i = 0; i < 8; ++i) g.f32(1.0f);
  auto f = gguf::parse(g.span(), "aligned.gguf");
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  EXPECT_EQ(start, 256u);
  EXPECT_EQ(f->alignment, 256u);
  EXPECT_EQ(f->data_offset, 256u);
}

TEST(Gguf, BlockSizesFollowGgmlLayouts) {
  // Bytes per tensor from ggml's block structs: Q4_0 18 per 32, Q8_0 34 per
  // 32, Q4_K 144 per 256, Q6_K 210 per 256, F16/BF16 2 per element.
  struct Case {
    uint32_t type;
    uint64_t ne0;
    uint64_t bytes;
  } cases[] = {{2, 64, 36}, {8, 64, 68}, {12, 512, 288}, {14, 256, 210}, {1, 3, 6}, {30, 5, 10}, {0, 3, 12}};
  for (const Case& c : cases) {
    GgufBytes g;
    g.header(3, 1, 0).tensor("t", {c.ne0, 2}, c.type, 0).pad_to(32);
    g.bytes.append(2 * c.bytes, '\0');
    auto f = gguf::parse(g.span(), "blocks.gguf");
    ASSERT_TRUE(f.ok()) << gguf::ggml_type_name(c.type) << ": " << f.status().to_string();
    EXPECT_EQ(f->tensors[0].bytes, 2 * c.bytes) << gguf::ggml_type_name(c.type);
  }
}

TEST(GgufWriter, RoundTripsMetadataAndTensors) {
  std::vector<float> weights(64 * 3);
  for (size_t i = 0; i < weights.size(); ++i) weights[i] = static_cast<float>(i) * 0.25f - 3.0f;
  std::vector<uint8_t> q8(34 * 2);
  for (size_t i = 0; i < q8.size(); ++i) q8[i] = static_cast<uint8_t>(i * 7);
  GgufWriter w(64);
  w.add_string("general.architecture", "llama");
  w.add_u32("llama.block_count", 5);
  w.add_i32("k.i32", -3);
  w.add_u64("k.u64", 1ull << 50);
  w.add_u8("k.u8", 9);
  w.add_f32("k.f32", 1e-5f);
  w.add_f64("k.f64", 0.125);
  w.add_bool("k.bool", false);
  w.add_string_array("k.strings", {"<unk>", "", "\xC4\xA0the"});
  const float floats[] = {0.5f, -1.0f};
  w.add_f32_array("k.floats", floats);
  const int32_t ints[] = {1, 2, 3, -4};
  w.add_i32_array("k.ints", ints);
  w.add_tensor("w", GgmlType::kF32, {64, 3},
               {reinterpret_cast<const uint8_t*>(weights.data()), weights.size() * 4});
  w.add_tensor("q", GgmlType::kQ8_0, {32, 2}, q8);
  auto bytes = w.to_bytes();
  ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();

  auto f = gguf::parse(as_span(*bytes), "written.gguf");
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  EXPECT_EQ(f->alignment, 64u);
  EXPECT_EQ(f->data_offset % 64, 0u);
  EXPECT_EQ(*f->get_string("general.architecture"), "llama");
  EXPECT_EQ(*f->get_int("llama.block_count"), 5);
  EXPECT_EQ(*f->get_int("k.i32"), -3);
  EXPECT_EQ(*f->get_int("k.u64"), 1ll << 50);
  EXPECT_EQ(*f->get_int("k.u8"), 9);
  EXPECT_EQ(*f->get_f32("k.f32"), 1e-5f);
  EXPECT_EQ(*f->get_f32("k.f64"), 0.125f);
  EXPECT_FALSE(*f->get_bool("k.bool"));
  EXPECT_EQ(*f->get_string_array("k.strings"), (std::vector<std::string>{"<unk>", "", "\xC4\xA0the"}));
  EXPECT_EQ(*f->get_f32_array("k.floats"), (std::vector<float>{0.5f, -1.0f}));
  EXPECT_EQ(*f->get_i32_array("k.ints"), (std::vector<int32_t>{1, 2, 3, -4}));
  const gguf::TensorInfo* t = f->find_tensor("w");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->ne, (std::vector<int64_t>{64, 3}));
  EXPECT_EQ(std::memcmp(t->data, weights.data(), weights.size() * 4), 0);
  const gguf::TensorInfo* q = f->find_tensor("q");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->type, GgmlType::kQ8_0);
  EXPECT_EQ(q->offset % 64, 0u);
  EXPECT_EQ(std::memcmp(q->data, q8.data(), q8.size()), 0);

  // write() produces the same bytes, atomically under the path.
  testing::TempDir dir;
  ASSERT_TRUE(w.write(dir.file("m.gguf")).ok());
  EXPECT_EQ(testing::read_file(dir.file("m.gguf")), *bytes);

  // Copying every key with add_value() (as a converter carries keys over)
  // reproduces the metadata bytes exactly.
  GgufWriter copy(64);
  for (const gguf::KeyValue& kv : f->metadata)
    if (kv.key != "general.alignment") copy.add_value(kv.key, kv.value);
  copy.add_tensor("w", GgmlType::kF32, {64, 3}, {t->data, t->bytes});
  copy.add_tensor("q", GgmlType::kQ8_0, {32, 2}, {q->data, q->bytes});
  auto copied = copy.to_bytes();
  ASSERT_TRUE(copied.ok());
  EXPECT_EQ(*copied, *bytes);
}

TEST(GgufWriter, RefusesInconsistentInput) {
  GgufWriter dup;
  dup.add_u32("a", 1);
  dup.add_u32("a", 2);
  EXPECT_TRUE(mentions(dup.to_bytes().status(), "added twice"));

  const std::vector<uint8_t> short_data(33);
  GgufWriter wrong_size;
  wrong_size.add_tensor("q", GgmlType::kQ8_0, {32}, short_data);
  auto s = wrong_size.to_bytes().status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(mentions(s, "given 33 bytes; its shape and type need 34")) << s.message();

  GgufWriter partial_block;
  partial_block.add_tensor("q", GgmlType::kQ4_K, {128}, short_data);
  EXPECT_TRUE(mentions(partial_block.to_bytes().status(), "256-element blocks"));

  GgufWriter bad_alignment(48);
  EXPECT_TRUE(mentions(bad_alignment.to_bytes().status(), "power of two"));
}

}  // namespace
}  // namespace tandem
