// The assembler against independent references: the llama2.c loaders (whole
// and per rank) for slicing, the published story for a whole model that went
// through a rotate-half reordering or an f16 file, hand-packed blocks for the
// k-quant decoders, and the FP8 e4m3 encoding's table values.
#include "runtime/model_assembly.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "runtime/backend.h"
#include "runtime/generator.h"
#include "runtime/llama2c_loader.h"
#include "runtime/llama_model.h"
#include "runtime/panel_layout.h"
#include "runtime/quant_blocks.h"
#include "runtime/source_dtypes.h"
#include "runtime/tokenizer.h"
#include "sharding/shard_loader.h"
#include "sharding/source_shard.h"
#include "tests/unit/test_paths.h"

namespace tandem {
namespace {

ModelSource bundled_source() {
  Result<ModelSource> s = load_llama2c_source(testing::bundled_checkpoint());
  EXPECT_TRUE(s.ok()) << s.status().to_string();
  return s.ok() ? std::move(s).value() : ModelSource{};
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype == b.dtype && a.shape_string() == b.shape_string() &&
         std::memcmp(a.data, b.data, a.bytes()) == 0;
}

void expect_same_weights(const LlamaWeights& got, const LlamaWeights& want) {
  EXPECT_EQ(got.embedding.data == nullptr, want.embedding.data == nullptr);
  if (want.embedding.data) {
    EXPECT_TRUE(same_bytes(got.embedding, want.embedding));
  }
  ASSERT_EQ(got.layers.size(), want.layers.size());
  for (size_t l = 0; l < want.layers.size(); ++l) {
    const LlamaLayerWeights &g = got.layers[l], &w = want.layers[l];
    for (auto [gt, wt, name] : {std::tuple{&g.attn_norm, &w.attn_norm, "attn_norm"},
                                {&g.wq, &w.wq, "wq"}, {&g.wk, &w.wk, "wk"}, {&g.wv, &w.wv, "wv"},
                                {&g.wo, &w.wo, "wo"}, {&g.ffn_norm, &w.ffn_norm, "ffn_norm"},
                                {&g.w_gate, &w.w_gate, "w_gate"}, {&g.w_down, &w.w_down, "w_down"},
                                {&g.w_up, &w.w_up, "w_up"}})
      EXPECT_TRUE(same_bytes(*gt, *wt)) << "layer " << l << " " << name;
  }
  EXPECT_EQ(got.classifier.data == nullptr, want.classifier.data == nullptr);
  if (want.classifier.data) {
    EXPECT_TRUE(same_bytes(got.classifier, want.classifier));
    EXPECT_TRUE(same_bytes(got.final_norm, want.final_norm));
  }
}

std::string greedy_story(LlamaWeights weights) {
  auto backend = make_backend(BackendOptions{});
  EXPECT_TRUE(backend.ok());
  if (!backend.ok()) return {};
  const int vocab = static_cast<int>(weights.config.vocab_size);
  auto model = LlamaModel::create(**backend, std::move(weights), LlamaModelOptions{});
  EXPECT_TRUE(model.ok()) << model.status().to_string();
  auto tokenizer = Tokenizer::load_llama2c(testing::bundled_tokenizer(), vocab);
  EXPECT_TRUE(tokenizer.ok());
  if (!model.ok() || !tokenizer.ok()) return {};
  GenerateRequest request;
  request.sampler.temperature = 0;
  std::string text;
  auto stats = generate(**model, *tokenizer, request, [&](std::string_view piece) {
    text += piece;
    return true;
  });
  EXPECT_TRUE(stats.ok()) << stats.status().to_string();
  return text;
}

TEST(ModelAssembly, WholeLlama2cModelIsTheLoadersViewsInPlace) {
  const ModelSource source = bundled_source();
  AssemblyReport report;
  auto w = assemble_weights(source, whole_model_part(source.config), AssemblyOptions{}, &report);
  ASSERT_TRUE(w.ok()) << w.status().to_string();
  auto reference = load_llama2c(testing::bundled_checkpoint());
  ASSERT_TRUE(reference.ok());
  expect_same_weights(*w, *reference);
  EXPECT_EQ(report.converted_bytes, 0u);
  EXPECT_GT(report.mapped_bytes, 0u);
  EXPECT_EQ(w->layers[0].wq.data, source.tensors.at("layers.0.wq").data);  // a view, not a copy
  EXPECT_EQ(greedy_story(std::move(w).value()), testing::published_story());
}

// The llama2.c header is 28 bytes, so the file's f32 rows sit 28 bytes past
// a cache line: the CPU's options copy every matrix whose rows a copy aligns
// (64 floats: 256 bytes) and leave the rest (w_down's 172-float rows) views.
TEST(ModelAssembly, CpuOptionsCopyMisalignedF32RowsToAlignedOnes) {
  const ModelSource source = bundled_source();
  ASSERT_NE(reinterpret_cast<uintptr_t>(source.tensors.at("layers.0.wq").data) % 64, 0u);
  AssemblyReport report;
  AssemblyOptions options = assembly_options_for(BackendKind::kCpu);
  options.f32_panels = false;  // what an AVX-512 CPU gets instead: the next test
  auto w = assemble_weights(source, whole_model_part(source.config), options, &report);
  ASSERT_TRUE(w.ok()) << w.status().to_string();
  auto reference = load_llama2c(testing::bundled_checkpoint());
  ASSERT_TRUE(reference.ok());
  expect_same_weights(*w, *reference);
  for (const auto& [name, t] : std::vector<std::pair<std::string, const Tensor*>>{
           {"embedding", &w->embedding}, {"layers.0.wq", &w->layers[0].wq}, {"layers.0.wk", &w->layers[0].wk},
           {"layers.1.wo", &w->layers[1].wo}, {"layers.4.w_up", &w->layers[4].w_up}}) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t->data) % 64, 0u) << name;
    EXPECT_NE(t->data, source.tensors.at(name).data) << name << " should be a copy";
  }
  EXPECT_EQ(w->layers[0].w_down.data, source.tensors.at("layers.0.w_down").data);  // 688-byte rows: a view
  EXPECT_GT(report.converted_bytes, 0u);
  ASSERT_EQ(report.notes.size(), 1u);
  EXPECT_NE(report.notes[0].find("f32 matrices copied to 64-byte-aligned rows"), std::string::npos) << report.notes[0];
  EXPECT_EQ(greedy_story(std::move(w).value()), testing::published_story());
}

// With f32 panels (assembly_options_for asks for them where the CPU's ISA
// gains, forced here so every host checks the layout), every f32 matrix is a
// copy holding the file's rows in runtime/panel_layout.h's order, the shared
// classifier is still the embedding, and the model, whose embedding lookup
// and matmuls then read panels (the scalar kernel off AVX-512), tells the
// published story.
TEST(ModelAssembly, F32PanelsHoldTheFilesRowsAndTellThePublishedStory) {
  const ModelSource source = bundled_source();
  AssemblyOptions options = assembly_options_for(BackendKind::kCpu);
  options.f32_panels = true;
  AssemblyReport report;
  auto w = assemble_weights(source, whole_model_part(source.config), options, &report);
  ASSERT_TRUE(w.ok()) << w.status().to_string();
  auto reference = load_llama2c(testing::bundled_checkpoint());
  ASSERT_TRUE(reference.ok());
  const auto expect_rows = [](const Tensor& got, const Tensor& want, const std::string& name) {
    ASSERT_EQ(got.dtype, DType::kF32Panels) << name;
    ASSERT_EQ(got.shape_string(), want.shape_string()) << name;
    const int64_t rows = got.rows(), n_in = got.row_length();
    std::vector<float> row(static_cast<size_t>(n_in));
    for (int64_t r = 0; r < rows; ++r) {
      load_panel_row(row.data(), static_cast<const float*>(got.data), rows, n_in, r);
      ASSERT_EQ(std::memcmp(row.data(), want.f32() + r * n_in, row.size() * sizeof(float)), 0) << name << " row " << r;
    }
  };
  expect_rows(w->embedding, reference->embedding, "embedding");
  for (size_t l = 0; l < w->layers.size(); ++l) {
    const LlamaLayerWeights &g = w->layers[l], &want = reference->layers[l];
    for (auto [gt, wt, name] : {std::tuple{&g.wq, &want.wq, "wq"}, {&g.wk, &want.wk, "wk"}, {&g.wv, &want.wv, "wv"},
                                {&g.wo, &want.wo, "wo"}, {&g.w_gate, &want.w_gate, "w_gate"},
                                {&g.w_down, &want.w_down, "w_down"}, {&g.w_up, &want.w_up, "w_up"}})
      expect_rows(*gt, *wt, "layer " + std::to_string(l) + " " + name);
    EXPECT_EQ(g.attn_norm.dtype, DType::kF32);  // vectors are not matrices
  }
  EXPECT_EQ(w->classifier.data, w->embedding.data);
  ASSERT_EQ(report.notes.size(), 1u);
  EXPECT_NE(report.notes[0].find("f32 matrices stored in 32-row panels"), std::string::npos) << report.notes[0];
  EXPECT_EQ(greedy_story(std::move(w).value()), testing::published_story());
}

TEST(ModelAssembly, EveryRankOfEveryLayoutMatchesTheLlama2cShardLoader) {
  const ModelSource source = bundled_source();
  for (auto [tp, pp] : {std::pair{2, 1}, {1, 2}, {2, 2}, {4, 1}, {8, 1}}) {
    auto plan = sharding::make_shard_plan(source.config, tp, pp, {});
    ASSERT_TRUE(plan.ok()) << plan.status().to_string();
    for (int rank = 0; rank < tp * pp; ++rank) {
      SCOPED_TRACE("tp=" + std::to_string(tp) + " pp=" + std::to_string(pp) + " rank " + std::to_string(rank));
      AssemblyReport report;
      auto got = sharding::load_source_shard(source, *plan, rank, AssemblyOptions{}, &report);
      ASSERT_TRUE(got.ok()) << got.status().to_string();
      // What the worker logs as its share: the plan's bytes, norms included.
      EXPECT_EQ(report.mapped_bytes + report.converted_bytes, plan->ranks[rank].weight_bytes);
      auto want = sharding::load_llama2c_shard(testing::bundled_checkpoint(), *plan, rank);
      ASSERT_TRUE(want.ok()) << want.status().to_string();
      expect_same_weights(*got, *want);
      EXPECT_EQ(got->shard.first_layer, want->shard.first_layer);
      EXPECT_EQ(got->shard.hidden_dim, want->shard.hidden_dim);
      EXPECT_EQ(got->shard.vocab_begin, want->shard.vocab_begin);
    }
  }
}

// HF's permute(): rotate-half row (h, i) holds interleaved row (h, 2i) for
// i < d/2, and (h, 2(i - d/2) + 1) after. Written here from that definition,
// independently of the assembler's inverse.
std::vector<float> to_rotate_half(const Tensor& t, int64_t head_dim) {
  const int64_t rows = t.rows(), cols = t.row_length();
  std::vector<float> out(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t head = r / head_dim, i = r % head_dim, half = head_dim / 2;
    const int64_t from = head * head_dim + (i < half ? 2 * i : 2 * (i - half) + 1);
    std::memcpy(&out[r * cols], t.f32() + from * cols, cols * sizeof(float));
  }
  return out;
}

TEST(ModelAssembly, RotateHalfCheckpointIsReorderedAndTellsThePublishedStory) {
  ModelSource source = bundled_source();
  std::vector<std::vector<float>> permuted;
  const int64_t hd = source.config.head_dim();
  auto reference = load_llama2c(testing::bundled_checkpoint());
  ASSERT_TRUE(reference.ok());
  for (size_t l = 0; l < reference->layers.size(); ++l)
    for (const char* part : {"wq", "wk"}) {
      const Tensor& t = part[1] == 'q' ? reference->layers[l].wq : reference->layers[l].wk;
      permuted.push_back(to_rotate_half(t, hd));
      source.tensors["layers." + std::to_string(l) + "." + part].data =
          reinterpret_cast<const uint8_t*>(permuted.back().data());
    }
  source.rope_layout = RopeLayout::kRotateHalf;
  // The permuted copy differs from the file: the test would pass vacuously otherwise.
  ASSERT_NE(std::memcmp(permuted[0].data(), reference->layers[0].wq.data, reference->layers[0].wq.bytes()), 0);
  AssemblyReport report;
  auto w = assemble_weights(source, whole_model_part(source.config), AssemblyOptions{}, &report);
  ASSERT_TRUE(w.ok()) << w.status().to_string();
  expect_same_weights(*w, *reference);
  EXPECT_GT(report.converted_bytes, 0u);
  // And a tp=2 rank reorders within its own heads.
  auto plan = sharding::make_shard_plan(source.config, 2, 1, {});
  ASSERT_TRUE(plan.ok());
  auto rank1 = sharding::load_source_shard(source, *plan, 1, AssemblyOptions{});
  auto want1 = sharding::load_llama2c_shard(testing::bundled_checkpoint(), *plan, 1);
  ASSERT_TRUE(rank1.ok() && want1.ok());
  expect_same_weights(*rank1, *want1);
  EXPECT_EQ(greedy_story(std::move(w).value()), testing::published_story());
}

TEST(ModelAssembly, F16FileIsConvertedForAnF32BackendAndKeptForAnF16One) {
  ModelSource source = bundled_source();
  std::vector<std::vector<uint16_t>> halves;
  for (auto& [name, t] : source.tensors) {
    const auto* f = reinterpret_cast<const float*>(t.data);
    std::vector<uint16_t> h(t.bytes / 4);
    for (size_t i = 0; i < h.size(); ++i) h[i] = quant::f16_from_f32(f[i]);
    halves.push_back(std::move(h));
    t.dtype = SourceDType::kF16;
    t.data = reinterpret_cast<const uint8_t*>(halves.back().data());
    t.bytes /= 2;
  }
  ASSERT_TRUE(validate_source(source).ok());
  AssemblyReport report;
  auto w = assemble_weights(source, whole_model_part(source.config), AssemblyOptions{}, &report);
  ASSERT_TRUE(w.ok()) << w.status().to_string();
  const Tensor& wq = w->layers[2].wq;
  EXPECT_EQ(wq.dtype, DType::kF32);
  const uint16_t* stored = reinterpret_cast<const uint16_t*>(source.tensors.at("layers.2.wq").data);
  for (int64_t i = 0; i < wq.numel(); ++i) ASSERT_EQ(wq.f32()[i], quant::f32_from_f16(stored[i])) << i;
  ASSERT_FALSE(report.notes.empty());
  EXPECT_NE(report.notes[0].find("f16 converted to f32"), std::string::npos) << report.notes[0];

  AssemblyOptions f16_backend;
  f16_backend.backend_dtypes = {DType::kF16};
  auto kept = assemble_weights(source, whole_model_part(source.config), f16_backend);
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->layers[2].wq.dtype, DType::kF16);
  EXPECT_EQ(kept->layers[2].wq.data, source.tensors.at("layers.2.wq").data);
  // The f16 model keeps the story's first 64 tokens' text (a prefix of 200 characters) exactly.
  const std::string story = greedy_story(std::move(w).value());
  EXPECT_EQ(story.substr(0, 200), testing::published_story().substr(0, 200));
}

// `--dtype q8_0` on stories260K: w_down's 172-wide rows are no whole 32-blocks
// and stay f32; the user who asked for q8_0 is told which and why.
TEST(ModelAssembly, AMatrixTheAskedDtypeCannotHoldIsNamedInTheNotes) {
  const ModelSource source = bundled_source();
  AssemblyOptions options;
  options.backend_dtypes = {DType::kF32, DType::kQ8_0};
  options.weight_dtype = DType::kQ8_0;
  AssemblyReport report;
  auto w = assemble_weights(source, whole_model_part(source.config), options, &report);
  ASSERT_TRUE(w.ok()) << w.status().to_string();
  EXPECT_EQ(w->layers[0].wq.dtype, DType::kQ8_0);
  EXPECT_EQ(w->layers[0].w_down.dtype, DType::kF32);
  const std::string kept = std::to_string(source.config.n_layers) +
                           " matrices stored as f32, not q8_0: rows of 172 are not whole q8_0 blocks of 32";
  bool said = false;
  std::string all;
  for (const std::string& note : report.notes) {
    said = said || note == kept;
    all += note + "\n";
  }
  EXPECT_TRUE(said) << all;
}

TEST(ModelAssembly, ChoosesTheBackendsDtypeOrFallsBack) {
  const std::vector<DType> cuda = {DType::kF32, DType::kBF16, DType::kQ8_0, DType::kQ4_0};
  EXPECT_EQ(choose_weight_dtype(SourceDType::kQ4_0, cuda), DType::kQ4_0);
  EXPECT_EQ(choose_weight_dtype(SourceDType::kQ4_K, cuda), DType::kQ8_0);
  EXPECT_EQ(choose_weight_dtype(SourceDType::kQ6_K, cuda), DType::kQ8_0);
  EXPECT_EQ(choose_weight_dtype(SourceDType::kF8E4M3, cuda), DType::kBF16);
  EXPECT_EQ(choose_weight_dtype(SourceDType::kF16, cuda), DType::kF32);
  EXPECT_EQ(choose_weight_dtype(SourceDType::kQ4_0, {DType::kF32}), DType::kF32);
  EXPECT_EQ(choose_weight_dtype(SourceDType::kBF16, {}), DType::kF32);
}

// A small Q8_0 model whose MLP (96 columns) a tp=2 split would cut mid-block.
TEST(ModelAssembly, ColumnSliceThatCutsABlockIsRefusedNamingIt) {
  LlamaConfig c;
  c.dim = 64, c.hidden_dim = 96, c.n_layers = 1, c.n_heads = 2, c.n_kv_heads = 2, c.vocab_size = 32;
  c.max_seq_len = 16;
  ModelSource source;
  source.path = "tiny.gguf";
  source.config = c;
  std::vector<std::vector<uint8_t>> owned;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, SourceDType dtype) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    owned.emplace_back(static_cast<size_t>(n / source_block_elems(dtype) * source_block_bytes(dtype)));
    source.tensors[name] = SourceTensor{dtype, shape, owned.back().data(), owned.back().size()};
  };
  add("embedding", {32, 64}, SourceDType::kQ8_0);
  add("final_norm", {64}, SourceDType::kF32);
  for (const char* n : {"attn_norm", "ffn_norm"}) add(std::string("layers.0.") + n, {64}, SourceDType::kF32);
  for (const char* n : {"wq", "wk", "wv", "wo"}) add(std::string("layers.0.") + n, {64, 64}, SourceDType::kQ8_0);
  for (const char* n : {"w_gate", "w_up"}) add(std::string("layers.0.") + n, {96, 64}, SourceDType::kQ8_0);
  add("layers.0.w_down", {64, 96}, SourceDType::kQ8_0);
  ASSERT_TRUE(validate_source(source).ok()) << validate_source(source).to_string();
  ModelPart part = whole_model_part(c);
  part.shard.hidden_dim = 48;
  part.hidden_begin = 48;
  auto w = assemble_weights(source, part, AssemblyOptions{});
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(w.status().message().find("columns [48, 96) of layers.0.w_down"), std::string::npos)
      << w.status().to_string();
  EXPECT_NE(w.status().message().find("blocks of 32"), std::string::npos);
  part.shard.hidden_dim = 64;  // outside the model
  EXPECT_EQ(assemble_weights(source, part, AssemblyOptions{}).status().code(), StatusCode::kInvalidArgument);
  part.shard.hidden_dim = 32;
  part.hidden_begin = 64;  // on block boundaries: fine
  EXPECT_TRUE(assemble_weights(source, part, AssemblyOptions{}).ok());
}

// Biases and Q/K norms of a rotate-half file: each bias entry goes with its
// matrix row (the rank's heads, reordered), and the norms of one head are
// reordered like a head's rows. Values are the source indices, so every
// entry says where it came from; the expected index is written here from
// HF's permute() (rotate-half position k/2, or d/2 + k/2 for odd k), apart
// from the assembler's code.
TEST(ModelAssembly, BiasesAndQkNormsFollowTheirRowsIntoEachRank) {
  ModelSource source = bundled_source();
  source.rope_layout = RopeLayout::kRotateHalf;
  LlamaConfig& c = source.config;
  c.attention_bias = c.qk_norm = true;
  const int64_t hd = c.head_dim();
  std::vector<std::vector<float>> values;
  auto add = [&](const std::string& name, int64_t n) {
    std::vector<float>& v = values.emplace_back(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(i);
    source.tensors[name] = SourceTensor{SourceDType::kF32, {n}, reinterpret_cast<const uint8_t*>(v.data()),
                                        static_cast<uint64_t>(n) * 4};
  };
  values.reserve(static_cast<size_t>(5 * c.n_layers));
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    add(p + "bq", c.q_dim());
    add(p + "bk", c.kv_dim());
    add(p + "bv", c.kv_dim());
    add(p + "q_norm", hd);
    add(p + "k_norm", hd);
  }
  ASSERT_TRUE(validate_source(source).ok());
  const auto from = [&](int64_t g, bool reordered) {  // the source index of interleaved entry g
    if (!reordered) return g;
    const int64_t head = g / hd, k = g % hd;
    return head * hd + (k % 2 == 0 ? k / 2 : hd / 2 + k / 2);
  };
  auto plan = sharding::make_shard_plan(c, 2, 1, {});
  ASSERT_TRUE(plan.ok()) << plan.status().to_string();
  for (int rank = 0; rank < 2; ++rank) {
    AssemblyReport report;
    auto w = sharding::load_source_shard(source, *plan, rank, AssemblyOptions{}, &report);
    ASSERT_TRUE(w.ok()) << w.status().to_string();
    EXPECT_EQ(report.mapped_bytes + report.converted_bytes, plan->ranks[rank].weight_bytes);
    const sharding::RankShard& r = plan->ranks[rank];
    for (const LlamaLayerWeights& l : w->layers) {
      ASSERT_EQ(l.bq.numel(), r.q_heads.size() * hd);
      ASSERT_EQ(l.bk.numel(), r.kv_heads.size() * hd);
      for (int64_t i = 0; i < l.bq.numel(); ++i)
        EXPECT_EQ(l.bq.f32()[i], from(r.q_heads.begin * hd + i, true)) << "bq " << i;
      for (int64_t i = 0; i < l.bk.numel(); ++i) {
        EXPECT_EQ(l.bk.f32()[i], from(r.kv_heads.begin * hd + i, true)) << "bk " << i;
        EXPECT_EQ(l.bv.f32()[i], from(r.kv_heads.begin * hd + i, false)) << "bv " << i;
      }
      for (int64_t i = 0; i < hd; ++i) {
        EXPECT_EQ(l.q_norm.f32()[i], from(i, true)) << "q_norm " << i;
        EXPECT_EQ(l.k_norm.f32()[i], from(i, true)) << "k_norm " << i;
      }
    }
  }
  // A tensor the config does not run is refused, not silently dropped.
  c.qk_norm = false;
  const Status s = validate_source(source);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("layers.0.q_norm"), std::string::npos) << s.to_string();
}

TEST(SourceDtypes, E4M3DecodesTheFormatsTableValues) {
  EXPECT_EQ(f32_from_e4m3(0x38), 1.0f);            // exponent 7 = bias
  EXPECT_EQ(f32_from_e4m3(0xC0), -2.0f);
  EXPECT_EQ(f32_from_e4m3(0x7E), 448.0f);          // the largest finite value
  EXPECT_EQ(f32_from_e4m3(0x01), std::ldexp(1.0f, -9));  // the smallest subnormal
  EXPECT_EQ(f32_from_e4m3(0x08), std::ldexp(1.0f, -6));  // the smallest normal
  EXPECT_TRUE(std::isnan(f32_from_e4m3(0x7F)));
  EXPECT_TRUE(std::isnan(f32_from_e4m3(0xFF)));
  EXPECT_EQ(f32_from_e4m3(0x80), 0.0f);
}

// Q4_K packed by hand from chosen 6-bit scales and mins, as the format
// describes them: pairs 0-3 in the low 6 bits of bytes 0-3 / 4-7, pairs 4-7
// split into low nibbles (bytes 8-11) and the top 2 bits of bytes 0-3 / 4-7.
TEST(SourceDtypes, Q4KBlockDecodesToScaleTimesQuantMinusMin) {
  const int scales[8] = {1, 63, 17, 40, 5, 33, 62, 48};
  const int mins[8] = {0, 7, 63, 21, 50, 1, 36, 12};
  uint8_t block[144] = {};
  const float d = 0.5f, dmin = 0.25f;
  const uint16_t dh = quant::f16_from_f32(d), mh = quant::f16_from_f32(dmin);
  std::memcpy(block, &dh, 2);
  std::memcpy(block + 2, &mh, 2);
  uint8_t* packed = block + 4;
  for (int j = 0; j < 4; ++j) {
    packed[j] = static_cast<uint8_t>(scales[j] | ((scales[j + 4] >> 4) << 6));
    packed[j + 4] = static_cast<uint8_t>(mins[j] | ((mins[j + 4] >> 4) << 6));
    packed[j + 8] = static_cast<uint8_t>((scales[j + 4] & 15) | ((mins[j + 4] & 15) << 4));
  }
  int q[256];
  for (int i = 0; i < 256; ++i) q[i] = (i * 7 + 3) % 16;
  // Element i: chunk c = i / 64 of 32 bytes; the low nibbles are its first 32.
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l)
      block[16 + 32 * c + l] = static_cast<uint8_t>(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
  float out[256];
  decode_source_row(SourceDType::kQ4_K, block, 0, 256, out);
  for (int i = 0; i < 256; ++i) {
    const int sub = i / 32;
    EXPECT_EQ(out[i], d * static_cast<float>(scales[sub] * q[i]) - dmin * static_cast<float>(mins[sub])) << i;
  }
}

// Q6_K packed by hand: 6-bit q = low nibble | high pair << 4, stored - 32.
TEST(SourceDtypes, Q6KBlockDecodesToScaleTimesCenteredQuant) {
  uint8_t block[210] = {};
  int8_t scales[16];
  for (int s = 0; s < 16; ++s) scales[s] = static_cast<int8_t>(s * 9 - 70);
  std::memcpy(block + 192, scales, 16);
  const float d = 0.125f;
  const uint16_t dh = quant::f16_from_f32(d);
  std::memcpy(block + 208, &dh, 2);
  int q[256];
  for (int i = 0; i < 256; ++i) q[i] = (i * 37 + 11) % 64;
  for (int half = 0; half < 2; ++half)
    for (int k = 0; k < 4; ++k)
      for (int l = 0; l < 32; ++l) {
        const int v = q[128 * half + 32 * k + l];
        uint8_t& low = block[64 * half + l + (k % 2) * 32];
        low = static_cast<uint8_t>(low | ((v & 15) << (k < 2 ? 0 : 4)));
        block[128 + 32 * half + l] = static_cast<uint8_t>(block[128 + 32 * half + l] | ((v >> 4) << (2 * k)));
      }
  float out[256];
  decode_source_row(SourceDType::kQ6_K, block, 0, 256, out);
  for (int i = 0; i < 256; ++i)
    EXPECT_EQ(out[i], d * static_cast<float>(scales[i / 16]) * static_cast<float>(q[i] - 32)) << i;
}

}  // namespace
}  // namespace tandem
