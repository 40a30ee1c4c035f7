// Chat templates: a conversation as the prompt text a chat model was trained
// on. Rather than run the Jinja a model file carries, from_jinja() recognises
// the family by its markers (as llama.cpp does) and renders it natively:
//   llama3   <|start_header_id|>   (Llama 3, 3.1, 3.2; 3.1's tool and date
//                                   preamble is not reproduced)
//   chatml   <|im_start|>          (Qwen2, Qwen2.5, and ChatML generally; a
//                                   default system prompt the template writes
//                                   out when none is given is kept)
//   gemma    <start_of_turn>
//   llama2   [INST] and <<SYS>>
//   mistral  [INST] without <<SYS>>, " [/INST]" (Mistral 7B Instruct v0.1
//            and v0.2: spaces inside the markers, no system role)
//   mistral-v3  [INST] without <<SYS>> or " [/INST]" (v0.3 and the v3
//            tokenizer's models: "[INST] text[/INST]", the system message
//            put before the last user message)
//   zephyr   <|user|> and <|assistant|>, turns ended by EOS
// The rendering omits the leading BOS the official templates write: the
// tokenizer adds it (Tokenizer::adds_bos()). Tokens the template writes
// between turns (llama2's "</s><s>", the markers above) are in the text, so
// encode it with parse_special set.
//
// No template (an empty one) is an error, not a guess: a wrong template
// silently degrades a model. Name a family with from_name() to choose one.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "runtime/status.h"

namespace tandem {

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

enum class ChatFamily { kLlama3, kChatml, kGemma, kLlama2, kMistral, kMistralV3, kZephyr };

std::string_view chat_family_name(ChatFamily family);
// "llama3, chatml, ...": every name from_name() takes, for messages.
std::string chat_family_names();

class ChatTemplate {
 public:
  // `bos` and `eos` are the vocabulary's BOS/EOS pieces ("<s>", "</s>"), which
  // llama2, mistral and zephyr write between turns. Unimplemented, naming
  // what it saw, for a template of no known family; FailedPrecondition for
  // an empty one.
  static Result<ChatTemplate> from_jinja(std::string_view jinja, std::string bos, std::string eos);
  // A name of chat_family_names(); InvalidArgument otherwise.
  static Result<ChatTemplate> from_name(std::string_view name, std::string bos, std::string eos);

  ChatFamily family() const { return family_; }
  // The default system prompt the template adds when the conversation has
  // none (chatml only; empty when none).
  const std::string& default_system() const { return default_system_; }

  // The prompt for `messages`, ending with the assistant's header when
  // `add_generation_prompt` (llama2 and the mistrals always end ready for it).
  // InvalidArgument for a role other than system/user/assistant, a system
  // message anywhere but first, or where the official template raises: roles
  // not alternating user/assistant (llama2, the mistrals, gemma), a system
  // message for mistral (v0.1) or gemma (Gemma 3's template folds it into the first
  // user turn; that one is accepted).
  Result<std::string> render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;

 private:
  ChatFamily family_ = ChatFamily::kChatml;
  std::string bos_, eos_;
  std::string default_system_;
  bool gemma_system_prefix_ = false;  // Gemma 3: system text prefixes the first user turn
};

}  // namespace tandem
