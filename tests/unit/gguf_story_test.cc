// End to end through load_model: the bundled stories260K written in the test
// as a GGUF file that embeds its tokenizer (tokenizer_spec_from_llama2c +
// add_gguf_tokenizer), loaded with no tokenizer file, so the embedded one is
// what runs. F32 tells the published greedy story; F16 and Q8_0 follow the
// f32 model's first 64 greedy tokens; the embedded tokenizer encodes and
// decodes as tok512.bin does.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "runtime/formats/gguf_llama_writer.h"
#include "runtime/formats/gguf_model.h"
#include "runtime/generator.h"
#include "runtime/llama2c_loader.h"
#include "runtime/loaded_model.h"
#include "runtime/quantize.h"
#include "tests/unit/test_paths.h"

namespace tandem {
namespace {

const Tokenizer& tok512() {
  static const Tokenizer* t = [] {
    auto r = Tokenizer::load_llama2c(testing::bundled_tokenizer(), 512);
    if (!r.ok()) {
      ADD_FAILURE() << r.status().to_string();
      std::abort();
    }
    return new Tokenizer(std::move(r).value());
  }();
  return *t;
}

// stories260K as GGUF: matrices in `dtype`, norms in f32 (as llama.cpp keeps
// 1-D tensors); a matrix whose rows are no whole number of blocks (w_down's
// 172 for Q8_0) falls back to f16, as llama.cpp's quantizer falls back to a
// type the row fits.
Status write_stories_gguf(DType dtype, const std::string& path) {
  TANDEM_ASSIGN_OR_RETURN(LlamaWeights w, load_llama2c(testing::bundled_checkpoint()));
  TANDEM_ASSIGN_OR_RETURN(TokenizerSpec spec, tokenizer_spec_from_llama2c(tok512()));
  GgufWriter out;
  add_gguf_llama_config(out, w.config);
  add_gguf_tokenizer(out, spec);
  std::vector<std::vector<uint8_t>> buffers;  // alive until write()
  buffers.reserve(64);
  auto add = [&](const std::string& canonical, const Tensor& t) {
    const int64_t cols = t.row_length();
    const int64_t rows = t.rows();
    const DType type = t.rank == 1 ? DType::kF32 : storable_as(dtype, cols) ? dtype : DType::kF16;
    std::vector<uint8_t>& bytes = buffers.emplace_back(
        static_cast<size_t>(rows * cols / dtype_block_elems(type) * dtype_block_bytes(type)));
    const size_t row_bytes = bytes.size() / static_cast<size_t>(rows);
    for (int64_t r = 0; r < rows; ++r)
      quantize_row(type, t.f32() + r * cols, cols, bytes.data() + r * row_bytes);
    std::vector<int64_t> ne = {cols};
    if (t.rank == 2) ne.push_back(rows);
    out.add_tensor(gguf_tensor_name(canonical), *ggml_type_of(type), ne, bytes);
  };
  add("embedding", w.embedding);
  add("final_norm", w.final_norm);
  const std::pair<const char*, Tensor LlamaLayerWeights::*> parts[] = {
      {"attn_norm", &LlamaLayerWeights::attn_norm}, {"wq", &LlamaLayerWeights::wq},
      {"wk", &LlamaLayerWeights::wk},               {"wv", &LlamaLayerWeights::wv},
      {"wo", &LlamaLayerWeights::wo},               {"ffn_norm", &LlamaLayerWeights::ffn_norm},
      {"w_gate", &LlamaLayerWeights::w_gate},       {"w_down", &LlamaLayerWeights::w_down},
      {"w_up", &LlamaLayerWeights::w_up}};
  for (size_t l = 0; l < w.layers.size(); ++l)
    for (const auto& [name, member] : parts) add("layers." + std::to_string(l) + "." + name, w.layers[l].*member);
  return out.write(path);
}

struct Story {
  std::vector<int> tokens;  // generated after BOS
  std::string text;
  uint64_t weight_bytes = 0;  // as the model holds them: shows the dtype was kept
};

// The greedy story of the GGUF file in `dtype`, loaded with its embedded tokenizer.
Story gguf_story(DType dtype) {
  testing::TempDir dir;
  const std::string path = dir.file("stories260K.gguf");
  Status written = write_stories_gguf(dtype, path);
  EXPECT_TRUE(written.ok()) << written.to_string();
  auto loaded = load_model(path, LoadOptions{});
  EXPECT_TRUE(loaded.ok()) << loaded.status().to_string();
  if (!loaded.ok()) return {};
  // The embedded tokenizer ran, not a llama2.c file: its BOS is "<s>".
  EXPECT_EQ(loaded->tokenizer.piece(1), "<s>");
  LlamaModel& model = *loaded->model;
  GenerateRequest request;
  request.sampler.temperature = 0;
  Story story;
  story.weight_bytes = model.weight_bytes();
  auto stats = generate(
      [&](std::span<const int> t, int64_t pos, std::span<float> logits) { return model.forward(t, pos, logits); },
      model.context(), loaded->tokenizer, request,
      [&](int token, std::string_view text) {
        if (token >= 0) story.tokens.push_back(token);
        story.text += text;
        return true;
      },
      [&](std::span<const int> t, int64_t pos) { return model.forward_argmax(t, pos); });
  EXPECT_TRUE(stats.ok()) << stats.status().to_string();
  return story;
}

TEST(GgufStory, SpecFromLlama2cRoundTripsThroughGgufMetadata) {
  auto spec = tokenizer_spec_from_llama2c(tok512());
  ASSERT_TRUE(spec.ok()) << spec.status().to_string();
  ASSERT_EQ(spec->tokens.size(), 512u);
  EXPECT_EQ(spec->tokens[0], "<unk>");
  EXPECT_EQ(spec->tokens[1], "<s>");
  EXPECT_EQ(spec->tokens[2], "</s>");
  EXPECT_EQ(spec->tokens[3 + 0x41], "<0x41>");
  EXPECT_EQ(spec->token_types[0], kTokenUnknown);
  EXPECT_EQ(spec->token_types[1], kTokenControl);
  EXPECT_EQ(spec->token_types[3 + 0x0A], kTokenByte);
  EXPECT_EQ(spec->token_types[259], kTokenNormal);
  EXPECT_EQ(spec->tokens[259], tok512().piece(259) == " t" ? "\xe2\x96\x81t" : "?");
  EXPECT_EQ(spec->scores[300], tok512().score(300));
  EXPECT_EQ(spec->bos, 1);
  EXPECT_EQ(spec->eos, 2);
  EXPECT_EQ(spec->unk, 0);

  testing::TempDir dir;
  const std::string path = dir.file("stories260K.gguf");
  ASSERT_TRUE(write_stories_gguf(DType::kF32, path).ok());
  auto source = load_gguf_source(path);
  ASSERT_TRUE(source.ok()) << source.status().to_string();
  ASSERT_TRUE(source->has_tokenizer);
  const TokenizerSpec& got = source->tokenizer;
  EXPECT_EQ(got.model, "llama");
  EXPECT_EQ(got.tokens, spec->tokens);
  EXPECT_EQ(got.scores, spec->scores);
  EXPECT_EQ(got.token_types, spec->token_types);
  EXPECT_EQ(got.bos, 1);
  EXPECT_EQ(got.eos, 2);
  EXPECT_EQ(got.unk, 0);
  EXPECT_TRUE(got.add_bos);
  EXPECT_FALSE(got.add_eos);
}

TEST(GgufStory, EmbeddedTokenizerEncodesLikeTok512) {
  testing::TempDir dir;
  const std::string path = dir.file("stories260K.gguf");
  ASSERT_TRUE(write_stories_gguf(DType::kF32, path).ok());
  auto loaded = load_model(path, LoadOptions{});
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  const Tokenizer& embedded = loaded->tokenizer;
  EXPECT_EQ(embedded.piece(2), "</s>");  // the embedded one, not tok512.bin's "\n</s>\n"
  for (const std::string& text : {std::string("Once upon a time"), std::string("Lily and Ben went to the park."),
                                 std::string("  two  spaces\nand a newline"), std::string("caf\xc3\xa9 \xf0\x9f\x99\x82"),
                                 testing::published_story()}) {
    SCOPED_TRACE(text);
    const std::vector<int> want = tok512().encode(text, true, false);
    EXPECT_EQ(embedded.encode(text, true, false), want);
    EXPECT_EQ(embedded.decode(want), tok512().decode(want));
  }
}

TEST(GgufStory, F32TellsThePublishedStory) {
  EXPECT_EQ(gguf_story(DType::kF32).text, testing::published_story());
}

// Measured when written: f16 keeps all 256 tokens of the f32 story, q8_0 the
// first 185; the line printed says how far each agrees today.
TEST(GgufStory, F16AndQ8_0FollowTheF32ModelsFirst64Tokens) {
  const Story f32 = gguf_story(DType::kF32);
  ASSERT_GE(f32.tokens.size(), 64u);
  const std::vector<int> want(f32.tokens.begin(), f32.tokens.begin() + 64);
  for (DType dtype : {DType::kF16, DType::kQ8_0}) {
    SCOPED_TRACE(std::string(dtype_name(dtype)));
    const Story got = gguf_story(dtype);
    ASSERT_GE(got.tokens.size(), 64u);
    // f16 halves the matrices; q8_0 (34 bytes per 32) with w_down in f16 is below that.
    EXPECT_LE(got.weight_bytes, f32.weight_bytes * 55 / 100);
    size_t agree = 0;
    while (agree < got.tokens.size() && agree < f32.tokens.size() && got.tokens[agree] == f32.tokens[agree]) ++agree;
    std::printf("%s: %zu of %zu tokens as f32's\n", std::string(dtype_name(dtype)).c_str(), agree, f32.tokens.size());
    EXPECT_EQ(std::vector<int>(got.tokens.begin(), got.tokens.begin() + 64), want);
  }
}

}  // namespace
}  // namespace tandem
