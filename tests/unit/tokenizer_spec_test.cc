// Tokenizer::from_spec: the "llama" (SentencePiece) path against the llama2.c
// tokenizer it generalises, the "gpt2" (byte-level BPE) path against a small
// vocabulary whose expected ids are worked out by hand, and the spec's
// validation.
#include "runtime/chat_template.h"
#include "runtime/generator.h"
#include "runtime/model_source.h"
#include "runtime/tokenizer.h"

#include "tests/unit/test_paths.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

namespace tandem {
namespace {

const char kSpace[] = "\xe2\x96\x81";  // ▁

const Tokenizer& tok512() {
  static const Tokenizer* t = [] {
    Result<Tokenizer> r = Tokenizer::load_llama2c(testing::bundled_tokenizer(), 512);
    if (!r.ok()) {
      ADD_FAILURE() << r.status().to_string();
      std::abort();
    }
    return new Tokenizer(std::move(r).value());
  }();
  return *t;
}

// tok512.bin as a GGUF-style "llama" vocabulary: spaces spelled ▁, token
// types from the llama2.c layout (0 unknown, 1-2 control, <0xNN> byte).
TokenizerSpec tok512_as_spec() {
  const Tokenizer& t = tok512();
  TokenizerSpec spec;
  spec.model = "llama";
  for (int id = 0; id < t.vocab_size(); ++id) {
    std::string p;
    for (char c : t.piece(id)) p += c == ' ' ? std::string(kSpace) : std::string(1, c);
    const std::string& raw = t.piece(id);
    const bool is_byte = raw.size() == 6 && raw.rfind("<0x", 0) == 0 && raw.back() == '>';
    spec.tokens.push_back(p);
    spec.scores.push_back(t.score(id));
    spec.token_types.push_back(id == 0 ? 2 : id <= 2 ? 3 : is_byte ? 6 : 1);
  }
  spec.unk = 0;
  spec.bos = 1;
  spec.eos = 2;
  return spec;
}

Tokenizer must(Result<Tokenizer> r) {
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  if (!r.ok()) std::abort();
  return std::move(r).value();
}

TEST(TokenizerSpecLlama, EncodesLikeTheLlama2cTokenizerItCameFrom) {
  const Tokenizer spec = must(Tokenizer::from_spec(tok512_as_spec(), 512));
  EXPECT_FALSE(spec.is_byte_level());
  EXPECT_EQ(spec.bos_id(), 1);
  EXPECT_EQ(spec.eos_id(), 2);
  EXPECT_TRUE(spec.adds_bos());
  EXPECT_FALSE(spec.adds_eos());
  // The published story's prompt (BOS only) and its text, then a mix.
  std::vector<std::string> texts = {
      "", testing::published_story(), "Once upon a time",
      "  many   spaces  ", "line one\nline two\r\n\ttab", "caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x99\x82",
      "\xff\xfe bytes \x80 not UTF-8 \xe4\xb8", std::string("nul\0", 4), "<s> </s> <unk> <0x41>",
  };
  for (const std::string& text : texts) {
    SCOPED_TRACE(::testing::PrintToString(text));
    const std::vector<int> ids = tok512().encode(text, true, false);
    EXPECT_EQ(spec.encode(text, true, false), ids);
    EXPECT_EQ(spec.encode(text, true, true), tok512().encode(text, true, true));
    EXPECT_EQ(spec.decode(ids), text);
    EXPECT_EQ(spec.decode(ids), tok512().decode(ids));
  }
  std::mt19937 rng(7);
  for (int iter = 0; iter < 300; ++iter) {
    std::string text(rng() % 30, '\0');
    for (char& c : text) c = static_cast<char>(rng() % 3 == 0 ? ' ' : rng());
    ASSERT_EQ(spec.encode(text, true, false), tok512().encode(text, true, false)) << ::testing::PrintToString(text);
    ASSERT_EQ(spec.decode(spec.encode(text, true, false)), text);
  }
}

TEST(TokenizerSpecLlama, PiecesIdsAndControlTokens) {
  const Tokenizer t = must(Tokenizer::from_spec(tok512_as_spec(), 512));
  EXPECT_EQ(t.token_id(std::string(kSpace) + "t"), 259);
  EXPECT_EQ(t.token_id(" t"), -1);
  EXPECT_EQ(t.token_id("<0x0A>"), 13);
  EXPECT_TRUE(t.is_control(1));
  EXPECT_TRUE(t.is_control(2));
  EXPECT_FALSE(t.is_control(0));
  EXPECT_FALSE(t.is_control(259));
  EXPECT_TRUE(t.is_end_of_generation(2));
  EXPECT_FALSE(t.is_end_of_generation(1));
  EXPECT_EQ(t.decode_piece(1, 259), "t");  // after BOS the dummy space goes
  EXPECT_EQ(t.decode_piece(5, 259), " t");
  EXPECT_EQ(t.decode_piece(5, 2), "");
  // The llama2.c tokenizer reports the same per-instance ids.
  EXPECT_EQ(tok512().bos_id(), Tokenizer::kBos);
  EXPECT_EQ(tok512().eos_id(), Tokenizer::kEos);
  EXPECT_EQ(tok512().unk_id(), Tokenizer::kUnk);
  EXPECT_TRUE(tok512().is_control(Tokenizer::kBos));
  EXPECT_EQ(tok512().token_id(" t"), 259);
}

// A small SentencePiece vocabulary with a user-defined and a control token.
TokenizerSpec small_llama_spec() {
  TokenizerSpec spec;
  spec.model = "llama";
  spec.tokens = {"<unk>", "<s>", "</s>", kSpace, "a", "b", std::string(kSpace) + "a", "<u>", "<ctl>"};
  spec.scores = {0, 0, 0, -3, -3, -3, -1, 0, 0};
  spec.token_types = {2, 3, 3, 1, 1, 1, 1, 4, 3};
  spec.unk = 0;
  spec.bos = 1;
  spec.eos = 2;
  return spec;
}

TEST(TokenizerSpecLlama, UserDefinedTokensMatchLiterallyControlTokensOnlyWhenParsed) {
  const Tokenizer t = must(Tokenizer::from_spec(small_llama_spec(), 9));
  // "a<u>b": the dummy space prefixes the text and the text after the
  // user-defined token (llama.cpp's rule); "▁a" merges.
  EXPECT_EQ(t.encode("a<u>b", false, false), (std::vector<int>{6, 7, 3, 5}));
  EXPECT_EQ(t.decode(t.encode("a<u>b", true, false)), "a<u> b");
  // Plain text cannot forge a control token: "<ctl>" falls back to <unk>
  // (this vocabulary has no byte tokens).
  const std::vector<int> plain = t.encode("<ctl>", false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 8), 0);
  EXPECT_EQ(t.encode("<ctl>a", false, false, /*parse_special=*/true), (std::vector<int>{8, 6}));
  EXPECT_EQ(t.decode({8}), "");
  EXPECT_EQ(t.decode({7}), "<u>");
}

TEST(TokenizerSpecLlama, WithoutTypesBytesAndControlsComeFromPiecesAndIds) {
  TokenizerSpec spec = tok512_as_spec();
  spec.token_types.clear();
  const Tokenizer t = must(Tokenizer::from_spec(spec, 512));
  EXPECT_TRUE(t.is_control(1));
  EXPECT_EQ(t.token_type(0), kTokenUnknown);
  EXPECT_EQ(t.token_type(13), kTokenByte);
  const std::string text = "caf\xc3\xa9 \xe4\xb8\xad\n";
  EXPECT_EQ(t.encode(text, true, true), tok512().encode(text, true, true));
  EXPECT_EQ(t.decode(t.encode(text, true, true)), text);
}

TEST(TokenizerSpecLlama, ShortTokenListIsPaddedWithUnusedTokens) {
  const Tokenizer t = must(Tokenizer::from_spec(small_llama_spec(), 12));
  EXPECT_EQ(t.vocab_size(), 12);
  EXPECT_EQ(t.piece(11), "[PAD11]");
  EXPECT_EQ(t.token_type(11), kTokenUnused);
  EXPECT_EQ(t.decode({4, 10, 11}), "a");
  EXPECT_EQ(t.token_id("[PAD10]"), 10);
  const std::vector<int> ids = t.encode("[PAD10]", false, false);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 10), 0);
}

// ---- byte-level BPE ----

// GPT-2's byte-to-character alphabet, written out from its definition:
// printable Latin-1 ('!'..'~', U+00A1..U+00AC, U+00AE..U+00FF) maps to
// itself; the remaining bytes, in order, to U+0100, U+0101, ...
std::string byte_char(int b) {
  int cp = b;
  if (!((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE)) {
    int n = 0;
    for (int x = 0; x < b; ++x) n += !((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE);
    cp = 256 + n;
  }
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

// Ids 0..255: the byte characters in byte order ("Ġ" is byte 32's). Then
// 256 he, 257 ll, 258 hell, 259 hello, 260 Ġw, 261 or, 262 Ġwor, 263 ld,
// 264 el, 265 xyz (no merge makes it), 266 <|eot|> control, 267 <u>
// user-defined, 268 <|bos|> control.
TokenizerSpec small_bpe_spec(const std::string& pre) {
  TokenizerSpec spec;
  spec.model = "gpt2";
  spec.pre = pre;
  for (int b = 0; b < 256; ++b) spec.tokens.push_back(byte_char(b));
  for (const char* p : {"he", "ll", "hell", "hello", "\xc4\xa0w", "or", "\xc4\xa0wor", "ld", "el", "xyz", "<|eot|>", "<u>",
                        "<|bos|>"}) {
    spec.tokens.push_back(p);
  }
  spec.token_types.assign(spec.tokens.size(), 1);
  spec.token_types[266] = 3;
  spec.token_types[267] = 4;
  spec.token_types[268] = 3;
  spec.merges = {"h e", "l l", "he ll", "hell o", "\xc4\xa0 w", "o r", "\xc4\xa0w or", "l d", "e l"};
  spec.bos = 268;
  spec.eos = 266;
  spec.add_bos = false;
  return spec;
}

TEST(TokenizerSpecBpe, MergesByRankWorkedOutByHand) {
  const Tokenizer t = must(Tokenizer::from_spec(small_bpe_spec("gpt2"), 269));
  EXPECT_TRUE(t.is_byte_level());
  // "hello" -> he, ll, hell, hello; " world" -> Ġw, or, Ġwor, then "ld".
  EXPECT_EQ(t.encode("hello world", false, false), (std::vector<int>{259, 262, 263}));
  // "h e" (rank 0) beats "e l" (rank 8): he + l.
  EXPECT_EQ(t.encode("hel", false, false), (std::vector<int>{256, 'l'}));
  // "e l" alone where "h e" cannot apply.
  EXPECT_EQ(t.encode("el", false, false), (std::vector<int>{264}));
  // Equal ranks go leftmost first: "lll" -> ll + l.
  EXPECT_EQ(t.encode("lll", false, false), (std::vector<int>{257, 'l'}));
  // " 1" is one word (gpt2's " ?\p{N}+") that no merge joins: Ġ and 1.
  EXPECT_EQ(t.encode(" 1", false, false), (std::vector<int>{32, '1'}));
  EXPECT_EQ(t.decode({259, 262, 263}), "hello world");
  EXPECT_EQ(t.decode({32}), " ");
  EXPECT_EQ(t.decode_piece(268, 262), " wor");  // no dummy space to strip
}

TEST(TokenizerSpecBpe, WholeWordsSkipMergesOnlyForLlama3) {
  const Tokenizer gpt2 = must(Tokenizer::from_spec(small_bpe_spec("gpt2"), 269));
  const Tokenizer llama3 = must(Tokenizer::from_spec(small_bpe_spec("llama-bpe"), 269));
  EXPECT_EQ(gpt2.encode("xyz", false, false), (std::vector<int>{'x', 'y', 'z'}));
  EXPECT_EQ(llama3.encode("xyz", false, false), (std::vector<int>{265}));
  EXPECT_EQ(llama3.encode("hello world", false, false), (std::vector<int>{259, 262, 263}));
}

TEST(TokenizerSpecBpe, SpecialTokensBosAndEos) {
  TokenizerSpec spec = small_bpe_spec("llama-bpe");
  spec.add_bos = true;
  const Tokenizer t = must(Tokenizer::from_spec(spec, 269));
  EXPECT_EQ(t.encode("he<|eot|>", t.adds_bos(), false, /*parse_special=*/true), (std::vector<int>{268, 256, 266}));
  EXPECT_EQ(t.encode("<|bos|><|eot|>", false, false, true), (std::vector<int>{268, 266}));
  // Unparsed, the control text is plain bytes; the user-defined token is cut out either way.
  const std::vector<int> plain = t.encode("he<|eot|>", false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 266), 0);
  EXPECT_EQ(t.decode(plain), "he<|eot|>");
  EXPECT_EQ(t.encode("he<u>he", false, false), (std::vector<int>{256, 267, 256}));
  EXPECT_EQ(t.encode("he", false, true), (std::vector<int>{256, 266}));
  EXPECT_EQ(t.decode({268, 256, 266, 267}), "he<u>");
  EXPECT_TRUE(t.is_end_of_generation(266));
  EXPECT_EQ(t.token_id("<|eot|>"), 266);
  EXPECT_EQ(t.token_id("\xc4\xa0wor"), 262);
}

// Llama 3 Instruct's EOS is <|eot_id|>; its base model's <|end_of_text|>,
// which the instruct model still emits at the end of plain text, ends a
// generation too. A user-defined token of that name does not.
TEST(TokenizerSpecBpe, TheBaseModelsEndOfTextEndsAnInstructModelsGeneration) {
  TokenizerSpec spec = small_bpe_spec("llama-bpe");
  spec.tokens.push_back("<|end_of_text|>");
  spec.token_types.push_back(3);
  const Tokenizer t = must(Tokenizer::from_spec(spec, 270));
  EXPECT_TRUE(t.is_end_of_generation(266));  // the EOS
  EXPECT_TRUE(t.is_end_of_generation(269));
  EXPECT_FALSE(t.is_end_of_generation(267));
  spec.token_types.back() = 4;
  EXPECT_FALSE(must(Tokenizer::from_spec(spec, 270)).is_end_of_generation(269));
}

// Random UTF-8 (and some invalid bytes) decodes back to itself under each
// pre-tokenizer: every byte lands in exactly one word and one token.
TEST(TokenizerSpecBpe, RoundTripsRandomText) {
  const std::vector<std::string> alphabet = {
      "a", "h", "e", "l", "o", "r", "w", "d", " ", "  ", "\n", "\r\n", "\t", "'s", "'LL", "1", "23", "4567", "!", "?!",
      "\xc3\xa9", "\xe4\xb8\xad", "\xd9\xa3", "\xe2\x85\xab", "\xc2\xb2", "\xcc\x81", "\xf0\x9f\x98\x80",
      "\xc2\xa0", "\xe3\x80\x80", "\xe2\x80\xa8", "<|eot|>", "<u>", "\xff", "\x80", "\xe4\xb8"};
  std::mt19937 rng(42);
  for (const char* pre : {"gpt2", "llama-bpe", "qwen2"}) {
    const Tokenizer t = must(Tokenizer::from_spec(small_bpe_spec(pre), 269));
    for (int iter = 0; iter < 300; ++iter) {
      std::string text;
      for (int n = static_cast<int>(rng() % 12); n > 0; --n) text += alphabet[rng() % alphabet.size()];
      ASSERT_EQ(t.decode(t.encode(text, false, false)), text) << pre << " " << ::testing::PrintToString(text);
    }
  }
}

// The generator with a tokenizer that adds no BOS and ends turns with a
// control token: the whole prompt is echoed, and the control token stops
// generation (a fake forward scripts the model's choices).
TEST(TokenizerSpecBpe, GeneratorEchoesAPromptWithoutBosAndStopsAtEndOfTurn) {
  const Tokenizer t = must(Tokenizer::from_spec(small_bpe_spec("llama-bpe"), 269));
  ASSERT_FALSE(t.adds_bos());
  const std::vector<int> script = {262, 263, 266, 259};  // " wor", "ld", <|eot|>, never reached
  size_t next = 0;
  auto forward = [&](std::span<const int>, int64_t, std::span<float> logits) {
    std::fill(logits.begin(), logits.end(), 0.0f);
    logits[static_cast<size_t>(script[std::min(next++, script.size() - 1)])] = 10.0f;
    return Status::Ok();
  };
  GenerateRequest request;
  request.prompt = "hello";
  request.max_new_tokens = 10;
  request.sampler.temperature = 0;
  std::string text;
  Result<GenerateStats> stats = generate(forward, 64, t, request, [&](int, std::string_view piece) {
    text += piece;
    return true;
  });
  ASSERT_TRUE(stats.ok()) << stats.status().to_string();
  EXPECT_EQ(text, "hello world");
  EXPECT_EQ(stats->prompt_tokens, 1);
  EXPECT_EQ(stats->generated_tokens, 2);
  EXPECT_EQ(stats->stop_reason, "eos");
}

// A rendered Llama 3 conversation, encoded with parse_special, holds its
// markers as the control tokens the model was trained on.
TEST(TokenizerSpecBpe, RenderedLlama3ChatEncodesItsMarkersAsControlTokens) {
  TokenizerSpec spec = small_bpe_spec("llama-bpe");
  for (const char* p : {"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"}) {  // ids 269, 270, 271
    spec.tokens.push_back(p);
    spec.token_types.push_back(3);
  }
  const Tokenizer t = must(Tokenizer::from_spec(spec, 272));
  Result<ChatTemplate> chat = ChatTemplate::from_name("llama3", "<|bos|>", "<|eot|>");
  ASSERT_TRUE(chat.ok());
  Result<std::string> prompt = chat->render({{"user", "hello"}}, true);
  ASSERT_TRUE(prompt.ok());
  // No merge applies to "user", "assistant" or "\n\n": their bytes' tokens.
  std::vector<int> expected = {269, 'u', 's', 'e', 'r', 270, '\n', '\n', 259, 271, 269};
  for (char c : std::string("assistant")) expected.push_back(c);
  expected.insert(expected.end(), {270, '\n', '\n'});
  EXPECT_EQ(t.encode(*prompt, false, false, /*parse_special=*/true), expected);
  EXPECT_TRUE(t.is_end_of_generation(271));
  EXPECT_FALSE(t.is_end_of_generation(269));
}

// ---- validation ----

void expect_error(const Result<Tokenizer>& r, StatusCode code, const std::string& detail) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), code) << r.status().to_string();
  EXPECT_NE(r.status().message().find(detail), std::string::npos) << r.status().to_string();
}

TEST(TokenizerSpecValidation, RefusesWhatCannotWork) {
  TokenizerSpec spec = small_llama_spec();
  spec.model = "wordpiece";
  expect_error(Tokenizer::from_spec(spec, 9), StatusCode::kUnimplemented, "\"wordpiece\"");
  spec = small_llama_spec();
  spec.tokens.clear();
  expect_error(Tokenizer::from_spec(spec, 9), StatusCode::kInvalidArgument, "empty");
  expect_error(Tokenizer::from_spec(small_llama_spec(), 8), StatusCode::kInvalidArgument, "9 tokens, more than");
  spec = small_llama_spec();
  spec.scores.pop_back();
  expect_error(Tokenizer::from_spec(spec, 9), StatusCode::kInvalidArgument, "8 scores for 9 tokens");
  spec = small_llama_spec();
  spec.token_types[4] = 9;
  expect_error(Tokenizer::from_spec(spec, 9), StatusCode::kInvalidArgument, "token 4 has type 9");
  spec = small_llama_spec();
  spec.token_types[4] = 6;
  expect_error(Tokenizer::from_spec(spec, 9), StatusCode::kInvalidArgument, "not <0xNN>");
  spec = small_llama_spec();
  spec.bos = 9;
  expect_error(Tokenizer::from_spec(spec, 9), StatusCode::kInvalidArgument, "BOS id 9 is outside");
  spec = small_llama_spec();
  spec.eos = -2;
  expect_error(Tokenizer::from_spec(spec, 9), StatusCode::kInvalidArgument, "EOS id -2");
  spec = small_llama_spec();
  spec.bos = -1;
  expect_error(Tokenizer::from_spec(spec, 9), StatusCode::kInvalidArgument, "adds BOS but names no BOS");

  spec = small_bpe_spec("gpt2");
  spec.merges.push_back("h q\xc3\xbf");
  expect_error(Tokenizer::from_spec(spec, 269), StatusCode::kInvalidArgument, "merge 9 \"h q\xc3\xbf\": \"q\xc3\xbf\" is not in the vocabulary");
  spec = small_bpe_spec("gpt2");
  spec.merges.push_back("x y");
  expect_error(Tokenizer::from_spec(spec, 269), StatusCode::kInvalidArgument, "merged piece \"xy\"");
  spec = small_bpe_spec("gpt2");
  spec.merges.push_back("hello");
  expect_error(Tokenizer::from_spec(spec, 269), StatusCode::kInvalidArgument, "not two pieces");
  spec = small_bpe_spec("gpt2");
  spec.tokens[0] = "NUL";
  expect_error(Tokenizer::from_spec(spec, 269), StatusCode::kInvalidArgument, "no token for byte 0");
  expect_error(Tokenizer::from_spec(small_bpe_spec("tekken"), 269), StatusCode::kUnimplemented, "\"tekken\"");
}

}  // namespace
}  // namespace tandem
