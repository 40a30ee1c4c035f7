// The assembler with a Q4_K file (runtime/model_assembly.h): the cpu keeps
// the matrices as views into the file (it computes with q4_k), cuda gets them
// converted to q8_0 (decoded values re-quantized, compared here against
// quantize_row of the decoded row), and a tensor-parallel cut must fall on
// the 256-column super-blocks, not merely on 32 columns.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "runtime/backend_dtypes.h"
#include "runtime/model_assembly.h"
#include "runtime/quantize.h"
#include "runtime/source_dtypes.h"

namespace tandem {
namespace {

// dim 256, hidden 512, one layer, 4/2 heads of 64, vocab 64; every matrix
// Q4_K (from random values), norms f32.
struct Q4KSource {
  ModelSource source;
  std::vector<std::vector<uint8_t>> owned;

  Q4KSource() {
    LlamaConfig& c = source.config;
    c.dim = 256, c.hidden_dim = 512, c.n_layers = 1, c.n_heads = 4, c.n_kv_heads = 2, c.vocab_size = 64;
    c.max_seq_len = 16;
    source.path = "tiny-q4k.gguf";
    std::mt19937 rng(3);
    std::normal_distribution<float> normal(0.0f, 0.05f);
    auto add = [&](const std::string& name, std::vector<int64_t> shape, SourceDType dtype) {
      const int64_t cols = shape.back(), rows = shape.size() == 2 ? shape[0] : 1;
      std::vector<float> values(static_cast<size_t>(cols));
      owned.emplace_back(static_cast<size_t>(rows * cols / source_block_elems(dtype) * source_block_bytes(dtype)));
      const size_t row_bytes = owned.back().size() / static_cast<size_t>(rows);
      for (int64_t r = 0; r < rows; ++r) {
        for (float& v : values) v = dtype == SourceDType::kF32 ? 1.0f + normal(rng) : normal(rng);
        quantize_row(dtype == SourceDType::kF32 ? DType::kF32 : DType::kQ4K, values.data(), cols,
                     owned.back().data() + r * row_bytes);
      }
      source.tensors[name] = SourceTensor{dtype, shape, owned.back().data(), owned.back().size()};
    };
    add("embedding", {64, 256}, SourceDType::kQ4_K);
    add("final_norm", {256}, SourceDType::kF32);
    for (const char* n : {"attn_norm", "ffn_norm"}) add(std::string("layers.0.") + n, {256}, SourceDType::kF32);
    add("layers.0.wq", {256, 256}, SourceDType::kQ4_K);
    add("layers.0.wk", {128, 256}, SourceDType::kQ4_K);
    add("layers.0.wv", {128, 256}, SourceDType::kQ4_K);
    add("layers.0.wo", {256, 256}, SourceDType::kQ4_K);
    for (const char* n : {"w_gate", "w_up"}) add(std::string("layers.0.") + n, {512, 256}, SourceDType::kQ4_K);
    add("layers.0.w_down", {256, 512}, SourceDType::kQ4_K);
  }
};

TEST(Q4KAssembly, CpuKeepsQ4KViewsAndCudaGetsQ8_0) {
  Q4KSource q;
  ASSERT_TRUE(validate_source(q.source).ok()) << validate_source(q.source).to_string();
  EXPECT_EQ(choose_weight_dtype(SourceDType::kQ4_K, backend_weight_dtypes(BackendKind::kCpu)), DType::kQ4K);
  EXPECT_EQ(choose_weight_dtype(SourceDType::kQ4_K, backend_weight_dtypes(BackendKind::kCuda)), DType::kQ8_0);

  AssemblyOptions cpu;
  cpu.backend_dtypes = backend_weight_dtypes(BackendKind::kCpu);
  AssemblyReport report;
  auto w = assemble_weights(q.source, whole_model_part(q.source.config), cpu, &report);
  ASSERT_TRUE(w.ok()) << w.status().to_string();
  EXPECT_EQ(w->layers[0].w_down.dtype, DType::kQ4K);
  EXPECT_EQ(w->layers[0].w_down.data, q.source.tensors.at("layers.0.w_down").data);  // a view, not a copy
  EXPECT_EQ(w->embedding.data, q.source.tensors.at("embedding").data);
  EXPECT_EQ(report.converted_bytes, 0u);
  EXPECT_TRUE(report.notes.empty());

  AssemblyOptions cuda;
  cuda.backend_dtypes = backend_weight_dtypes(BackendKind::kCuda);
  auto c = assemble_weights(q.source, whole_model_part(q.source.config), cuda, &report);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  const Tensor& wq = c->layers[0].wq;
  ASSERT_EQ(wq.dtype, DType::kQ8_0);
  ASSERT_FALSE(report.notes.empty());
  EXPECT_NE(report.notes[0].find("q4_k converted to q8_0"), std::string::npos) << report.notes[0];
  const SourceTensor& stored = q.source.tensors.at("layers.0.wq");
  std::vector<float> decoded(256);
  std::vector<uint8_t> want(256 / 32 * 34);
  for (int64_t r = 0; r < 256; ++r) {
    decode_source_row(SourceDType::kQ4_K, stored.data + r * 144, 0, 256, decoded.data());
    quantize_row(DType::kQ8_0, decoded.data(), 256, want.data());
    ASSERT_EQ(std::memcmp(static_cast<const uint8_t*>(wq.data) + r * want.size(), want.data(), want.size()), 0)
        << "row " << r;
  }
}

TEST(Q4KAssembly, ColumnCutThatIs32ButNot256AlignedIsRefusedNamingIt) {
  Q4KSource q;
  AssemblyOptions cpu;
  cpu.backend_dtypes = backend_weight_dtypes(BackendKind::kCpu);
  ModelPart part = whole_model_part(q.source.config);
  part.hidden_begin = 128;  // a multiple of 32 (a Q8_0 block), inside a Q4_K super-block
  part.shard.hidden_dim = 384;
  auto w = assemble_weights(q.source, part, cpu);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), StatusCode::kInvalidArgument);
  const std::string& m = w.status().message();
  EXPECT_NE(m.find("columns [128, 512) of layers.0.w_down"), std::string::npos) << m;
  EXPECT_NE(m.find("q4_k blocks of 256"), std::string::npos) << m;
  // The same for cuda, which would convert: the cut is refused before decoding.
  AssemblyOptions cuda;
  cuda.backend_dtypes = backend_weight_dtypes(BackendKind::kCuda);
  EXPECT_EQ(assemble_weights(q.source, part, cuda).status().code(), StatusCode::kInvalidArgument);
  // tp=2 on super-block boundaries: fine, and still views of whole rows where it can be.
  part.hidden_begin = 256;
  part.shard.hidden_dim = 256;
  auto half = assemble_weights(q.source, part, cpu);
  ASSERT_TRUE(half.ok()) << half.status().to_string();
  EXPECT_EQ(half->layers[0].w_down.dtype, DType::kQ4K);
  EXPECT_EQ(half->layers[0].w_down.row_length(), 256);
  EXPECT_EQ(std::memcmp(half->layers[0].w_down.data, q.source.tensors.at("layers.0.w_down").data + 144, 144), 0);
}

TEST(Q4KAssembly, QuantizeOnLoadToQ4KEncodesTheF32Rows) {
  // An f32 file asked for q4_k (--dtype q4_k): each matrix is quantize_row's
  // encoding of the file's rows.
  Q4KSource q;
  std::vector<std::vector<float>> f32;
  for (auto& [name, t] : q.source.tensors) {
    if (t.dtype != SourceDType::kQ4_K) continue;
    const int64_t cols = t.shape.back(), rows = t.shape[0];
    std::vector<float>& v = f32.emplace_back(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r)
      decode_source_row(SourceDType::kQ4_K, t.data + r * cols / 256 * 144, 0, cols, &v[r * cols]);
    t.dtype = SourceDType::kF32;
    t.data = reinterpret_cast<const uint8_t*>(v.data());
    t.bytes = v.size() * 4;
  }
  ASSERT_TRUE(validate_source(q.source).ok());
  AssemblyOptions options;
  options.backend_dtypes = backend_weight_dtypes(BackendKind::kCpu);
  options.weight_dtype = DType::kQ4K;
  auto w = assemble_weights(q.source, whole_model_part(q.source.config), options);
  ASSERT_TRUE(w.ok()) << w.status().to_string();
  EXPECT_EQ(w->layers[0].w_gate.dtype, DType::kQ4K);
  std::vector<uint8_t> want(144);
  quantize_row(DType::kQ4K, reinterpret_cast<const float*>(q.source.tensors.at("layers.0.w_gate").data), 256,
               want.data());
  EXPECT_EQ(std::memcmp(w->layers[0].w_gate.data, want.data(), 144), 0);
}

}  // namespace
}  // namespace tandem
