// tokenizer.json + tokenizer_config.json -> TokenizerSpec (runtime/formats/hf_model.h).
#include <filesystem>
#include <unordered_map>

#include "runtime/formats/hf_model.h"
#include "runtime/formats/json_file.h"

namespace tandem {
namespace {

using json_file::Json;

// Large vocabularies (Gemma's 256k tokens) make tokenizer.json tens of MB.
constexpr uint64_t kMaxTokenizerBytes = 512ull << 20;
constexpr uint64_t kMaxTokenizerConfigBytes = 64ull << 20;

// The split regexes of the byte-level BPE tokenizers the tokenizer runs, as
// their tokenizer.json files spell them; they differ in how digits group.
constexpr std::string_view kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// The pre-tokenizer's name for the tokenizer (TokenizerSpec::pre): a Split
// by a known regex, or GPT-2's ByteLevel with its built-in regex.
std::string pre_tokenizer_name(const Json* pre) {
  if (pre == nullptr || !pre->is_object()) return "default";
  std::vector<const Json*> parts;
  const Json* list = json_file::get(*pre, "pretokenizers");
  if (list != nullptr && list->is_array()) {
    for (const Json& p : *list) parts.push_back(&p);
  } else {
    parts.push_back(pre);
  }
  for (const Json* p : parts) {
    const Json* type = json_file::get(*p, "type");
    if (type == nullptr || !type->is_string()) continue;
    if (*type == "Split") {
      const Json* pattern = json_file::get(*p, "pattern");
      const Json* regex = pattern != nullptr ? json_file::get(*pattern, "Regex") : nullptr;
      if (regex == nullptr || !regex->is_string()) return "default";
      const std::string r = regex->get<std::string>();
      if (r == kLlama3Regex) return "llama-bpe";
      if (r == kQwen2Regex) return "qwen2";
      return "default";
    }
    if (*type == "ByteLevel") {
      const Json* use_regex = json_file::get(*p, "use_regex");
      if (use_regex == nullptr || (use_regex->is_boolean() && use_regex->get<bool>())) return "gpt2";
    }
  }
  return "default";
}

// "a b", or ["a", "b"] in newer files. A part holding a space cannot be told
// apart in the spec's "a b" form; such merges are as ambiguous as in GGUF.
Result<std::string> merge_text(const Json& m, size_t index, const std::string& path) {
  if (m.is_string()) return m.get<std::string>();
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())
    return m[0].get<std::string>() + " " + m[1].get<std::string>();
  return InvalidArgument(path + ": model.merges[" + std::to_string(index) +
                         "] must be \"a b\" or [\"a\", \"b\"]");
}

bool is_byte_token(const std::string& piece) {
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); };
  return piece.size() == 6 && piece.compare(0, 3, "<0x") == 0 && hex(piece[3]) && hex(piece[4]) &&
         piece[5] == '>';
}

// A token named in tokenizer_config.json: "<s>" or {"content": "<s>", ...}.
Result<std::optional<std::string>> token_text(const Json& config, std::string_view key,
                                              const std::string& path) {
  const Json* v = json_file::get(config, key);
  if (v == nullptr) return std::optional<std::string>();
  if (v->is_object()) return json_file::get_string(*v, "content", path + " (" + std::string(key) + ")");
  return json_file::get_string(config, key, path);
}

struct Builder {
  TokenizerSpec spec;
  std::unordered_map<std::string, int32_t> ids;
  std::vector<bool> filled;

  Result<int32_t> lookup(const std::string& token, std::string_view role, const std::string& path) const {
    const auto it = ids.find(token);
    if (it == ids.end())
      return InvalidArgument(path + ": " + std::string(role) + " \"" + token + "\" is not in the vocabulary");
    return it->second;
  }
};

Status read_vocab(const Json& model, const Json* added, const std::string& path, Builder& b) {
  const Json* vocab = json_file::get(model, "vocab");
  if (vocab == nullptr || !vocab->is_object())
    return InvalidArgument(path + ": model.vocab must be an object of token -> id");
  // Ids are dense in real files; bounding them by the entries keeps a hostile
  // id from sizing the vocabulary.
  const uint64_t entries = vocab->size() + (added != nullptr ? added->size() : 0);
  if (entries > static_cast<uint64_t>(kMaxVocab))
    return InvalidArgument(path + ": " + std::to_string(entries) + " tokens, more than " +
                           std::to_string(kMaxVocab));
  auto check_id = [&](const Json& id, const std::string& token) -> Result<int32_t> {
    if (!id.is_number_unsigned() || id.get<uint64_t>() >= entries)
      return InvalidArgument(path + ": token \"" + token + "\" has id " +
                             (id.is_primitive() ? id.dump() : std::string("of type ") + id.type_name()) +
                             ", not an integer in [0, " + std::to_string(entries) + ")");
    return static_cast<int32_t>(id.get<uint64_t>());
  };
  auto place = [&](int32_t id, const std::string& token, int32_t type) {
    if (static_cast<size_t>(id) >= b.spec.tokens.size()) {
      b.spec.tokens.resize(id + 1);
      b.spec.token_types.resize(id + 1, 5);  // unused until filled
      b.filled.resize(id + 1, false);
    }
    // An added token may restate an id the vocabulary gave another text:
    // the old text then names nothing (a role lookup must not find it).
    if (b.filled[id] && b.spec.tokens[id] != token) {
      if (const auto it = b.ids.find(b.spec.tokens[id]); it != b.ids.end() && it->second == id) b.ids.erase(it);
    }
    b.spec.tokens[id] = token;
    b.spec.token_types[id] = type;
    b.filled[id] = true;
    b.ids[token] = id;
  };
  for (const auto& [token, id] : vocab->items()) {
    TANDEM_ASSIGN_OR_RETURN(const int32_t i, check_id(id, token));
    if (static_cast<size_t>(i) < b.filled.size() && b.filled[i])
      return InvalidArgument(path + ": model.vocab gives id " + std::to_string(i) + " to two tokens");
    place(i, token, 1);
  }
  if (added == nullptr) return Status::Ok();
  if (!added->is_array()) return InvalidArgument(path + ": added_tokens must be a list");
  for (const Json& a : *added) {
    TANDEM_ASSIGN_OR_RETURN(std::optional<std::string> content, json_file::get_string(a, "content", path + " (added_tokens)"));
    TANDEM_ASSIGN_OR_RETURN(std::optional<bool> special, json_file::get_bool(a, "special", path + " (added_tokens)"));
    const Json* id = json_file::get(a, "id");
    if (!content || id == nullptr) return InvalidArgument(path + ": an added_tokens entry lacks id or content");
    TANDEM_ASSIGN_OR_RETURN(const int32_t i, check_id(*id, *content));
    place(i, *content, special.value_or(false) ? 3 : 4);
  }
  return Status::Ok();
}

Status read_merges(const Json& model, const std::string& path, Builder& b) {
  const Json* merges = json_file::get(model, "merges");
  if (merges == nullptr) return Status::Ok();
  if (!merges->is_array()) return InvalidArgument(path + ": model.merges must be a list");
  b.spec.merges.reserve(merges->size());
  for (size_t r = 0; r < merges->size(); ++r) {
    TANDEM_ASSIGN_OR_RETURN(std::string text, merge_text((*merges)[r], r, path));
    b.spec.merges.push_back(std::move(text));
  }
  return Status::Ok();
}

// SentencePiece merges the adjacent pair whose merged piece scores highest;
// Hugging Face's BPE applies the merge of lowest rank. Scoring each piece
// -rank of the first merge that forms it makes the two choose alike; pieces
// no merge forms (characters, bytes, added tokens) score below every merge.
void derive_scores(Builder& b) {
  const float unmerged = -static_cast<float>(b.spec.merges.size());
  b.spec.scores.assign(b.spec.tokens.size(), unmerged);
  std::vector<bool> scored(b.spec.tokens.size(), false);
  for (size_t r = 0; r < b.spec.merges.size(); ++r) {
    const std::string& m = b.spec.merges[r];
    const size_t space = m.find(' ');
    if (space == std::string::npos) continue;
    const auto it = b.ids.find(m.substr(0, space) + m.substr(space + 1));
    if (it == b.ids.end() || scored[it->second]) continue;
    b.spec.scores[it->second] = -static_cast<float>(r);
    scored[it->second] = true;
  }
}

// The BOS a post_processor's template puts first ({"SpecialToken": {"id": ...}}),
// as Llama 3's tokenizer.json adds BOS without an add_bos_token key. Recurses
// into nested processors: json_file::read bounded the depth.
std::optional<std::string> template_bos(const Json* post) {
  if (post == nullptr || !post->is_object()) return std::nullopt;
  const Json* list = json_file::get(*post, "processors");
  if (list != nullptr && list->is_array()) {
    for (const Json& p : *list)
      if (auto bos = template_bos(&p)) return bos;
    return std::nullopt;
  }
  const Json* single = json_file::get(*post, "single");
  if (single == nullptr || !single->is_array() || single->empty()) return std::nullopt;
  const Json* special = json_file::get((*single)[0], "SpecialToken");
  const Json* id = special != nullptr ? json_file::get(*special, "id") : nullptr;
  if (id == nullptr || !id->is_string()) return std::nullopt;
  return id->get<std::string>();
}

Status read_tokenizer_config(const std::string& path, Builder& b) {
  TANDEM_ASSIGN_OR_RETURN(const Json config, json_file::read(path, kMaxTokenizerConfigBytes));
  if (!config.is_object()) return InvalidArgument(path + ": not a JSON object");
  const std::pair<std::string_view, int32_t*> roles[] = {
      {"bos_token", &b.spec.bos}, {"eos_token", &b.spec.eos},
      {"unk_token", &b.spec.unk}, {"pad_token", &b.spec.pad}};
  for (const auto& [key, id] : roles) {
    TANDEM_ASSIGN_OR_RETURN(std::optional<std::string> text, token_text(config, key, path));
    if (text) {
      TANDEM_ASSIGN_OR_RETURN(*id, b.lookup(*text, key, path));
    }
  }
  TANDEM_ASSIGN_OR_RETURN(std::optional<bool> add_bos, json_file::get_bool(config, "add_bos_token", path));
  TANDEM_ASSIGN_OR_RETURN(std::optional<bool> add_eos, json_file::get_bool(config, "add_eos_token", path));
  if (add_bos) b.spec.add_bos = *add_bos;
  if (add_eos) b.spec.add_eos = *add_eos;
  const Json* tmpl = json_file::get(config, "chat_template");
  if (tmpl == nullptr) return Status::Ok();
  if (tmpl->is_string()) {
    b.spec.chat_template = tmpl->get<std::string>();
    return Status::Ok();
  }
  if (!tmpl->is_array())
    return InvalidArgument(path + ": \"chat_template\" must be a string or a list of {name, template}");
  // Several named templates ("default", "tool_use", ...): the default one.
  for (const Json& t : *tmpl) {
    TANDEM_ASSIGN_OR_RETURN(std::optional<std::string> name, json_file::get_string(t, "name", path));
    TANDEM_ASSIGN_OR_RETURN(std::optional<std::string> text, json_file::get_string(t, "template", path));
    if (name && *name == "default" && text) b.spec.chat_template = *text;
  }
  return Status::Ok();
}

}  // namespace

Result<std::optional<TokenizerSpec>> read_hf_tokenizer(const std::string& dir) {
  const std::string path = dir + "/tokenizer.json";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::optional<TokenizerSpec>();
  TANDEM_ASSIGN_OR_RETURN(const Json doc, json_file::read(path, kMaxTokenizerBytes));
  const Json* model = json_file::get(doc, "model");
  if (model == nullptr || !model->is_object()) return InvalidArgument(path + ": \"model\" must be an object");
  TANDEM_ASSIGN_OR_RETURN(std::optional<std::string> type, json_file::get_string(*model, "type", path));
  if (type.value_or("BPE") != "BPE")
    return Unimplemented(path + ": tokenizer model " + *type + " is not supported (BPE is)");
  TANDEM_ASSIGN_OR_RETURN(std::optional<bool> byte_fallback,
                          json_file::get_bool(*model, "byte_fallback", path));
  Builder b;
  b.spec.model = byte_fallback.value_or(false) ? "llama" : "gpt2";
  TANDEM_RETURN_IF_ERROR(read_vocab(*model, json_file::get(doc, "added_tokens"), path, b));
  TANDEM_RETURN_IF_ERROR(read_merges(*model, path, b));
  if (b.spec.model == "llama") {
    for (size_t i = 0; i < b.spec.tokens.size(); ++i)
      if (b.spec.token_types[i] == 1 && is_byte_token(b.spec.tokens[i])) b.spec.token_types[i] = 6;
    derive_scores(b);
    // SentencePiece's conventional specials, until tokenizer_config names them.
    if (const auto it = b.ids.find("<s>"); it != b.ids.end()) b.spec.bos = it->second;
    if (const auto it = b.ids.find("</s>"); it != b.ids.end()) b.spec.eos = it->second;
  } else {
    b.spec.pre = pre_tokenizer_name(json_file::get(doc, "pre_tokenizer"));
    b.spec.add_bos = false;
    if (const auto bos = template_bos(json_file::get(doc, "post_processor"))) {
      TANDEM_ASSIGN_OR_RETURN(b.spec.bos, b.lookup(*bos, "the post_processor's first token", path));
      b.spec.add_bos = true;
    }
  }
  TANDEM_ASSIGN_OR_RETURN(std::optional<std::string> unk, json_file::get_string(*model, "unk_token", path));
  if (unk) {
    TANDEM_ASSIGN_OR_RETURN(b.spec.unk, b.lookup(*unk, "model.unk_token", path));
    b.spec.token_types[b.spec.unk] = 2;
  }
  const std::string config_path = dir + "/tokenizer_config.json";
  if (std::filesystem::exists(config_path, ec)) TANDEM_RETURN_IF_ERROR(read_tokenizer_config(config_path, b));
  return std::optional<TokenizerSpec>(std::move(b.spec));
}

}  // namespace tandem
