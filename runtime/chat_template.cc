#include "runtime/chat_template.h"

#include <array>
#include <initializer_list>
#include <utility>

namespace tandem {
namespace {

constexpr std::array<std::pair<ChatFamily, std::string_view>, 7> kNames = {{
    {ChatFamily::kLlama3, "llama3"},
    {ChatFamily::kChatml, "chatml"},
    {ChatFamily::kGemma, "gemma"},
    {ChatFamily::kLlama2, "llama2"},
    {ChatFamily::kMistral, "mistral"},
    {ChatFamily::kMistralV3, "mistral-v3"},
    {ChatFamily::kZephyr, "zephyr"},
}};

// Concatenation by appends: GCC 12 misreports chains of operator+ on
// strings (-Wrestrict), and this makes no temporaries.
void append(std::string& out, std::initializer_list<std::string_view> parts) {
  for (std::string_view p : parts) out += p;
}

bool contains(std::string_view text, std::string_view needle) { return text.find(needle) != std::string_view::npos; }

// Jinja's trim and Python's str.strip() on ASCII whitespace (Unicode spaces
// at a message's ends are kept; a documented difference).
std::string trim(std::string_view s) {
  const std::string_view ws = " \t\n\r\v\f";
  const size_t first = s.find_first_not_of(ws);
  if (first == std::string_view::npos) return {};
  return std::string(s.substr(first, s.find_last_not_of(ws) - first + 1));
}

// The system prompt a ChatML template writes when the conversation has none,
// as in Qwen2's '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n':
// a string literal holding the whole system turn. Empty when none.
std::string chatml_default_system(std::string_view jinja) {
  const std::string_view head = "<|im_start|>system\\n";
  for (size_t pos = jinja.find(head); pos != std::string_view::npos; pos = jinja.find(head, pos + 1)) {
    const size_t start = pos + head.size();
    const size_t end = jinja.find("<|im_end|>", start);
    if (end == std::string_view::npos) break;
    const std::string_view body = jinja.substr(start, end - start);
    if (body.empty() || body.find_first_of("'\"{}+") != std::string_view::npos) continue;  // an expression, not text
    std::string out;
    for (size_t i = 0; i < body.size(); ++i) {
      if (body[i] == '\\' && i + 1 < body.size() && body[i + 1] == 'n') {
        out += '\n';
        ++i;
      } else {
        out += body[i];
      }
    }
    return out;
  }
  return {};
}

Status check_roles(const std::vector<ChatMessage>& messages) {
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& role = messages[i].role;
    if (role != "system" && role != "user" && role != "assistant") {
      return InvalidArgument("message " + std::to_string(i) + " has role \"" + role +
                             "\"; chat templates take system, user and assistant");
    }
    if (role == "system" && i > 0) {
      return InvalidArgument("message " + std::to_string(i) + " is a system message; only the first may be");
    }
  }
  return Status::Ok();
}

// The official llama2/mistral/gemma templates raise unless the turns after
// the system message go user, assistant, user, ...
Status check_alternating(const std::vector<ChatMessage>& messages, size_t first, std::string_view family) {
  for (size_t i = first; i < messages.size(); ++i) {
    const bool want_user = (i - first) % 2 == 0;
    if ((messages[i].role == "user") != want_user) {
      return InvalidArgument(std::string(family) + " conversations must alternate user/assistant/user/...; message " +
                             std::to_string(i) + " is " + messages[i].role);
    }
  }
  return Status::Ok();
}

}  // namespace

std::string_view chat_family_name(ChatFamily family) {
  for (const auto& [f, name] : kNames) {
    if (f == family) return name;
  }
  return "unknown";
}

std::string chat_family_names() {
  std::string names;
  for (const auto& [f, name] : kNames) names += (names.empty() ? "" : ", ") + std::string(name);
  return names;
}

Result<ChatTemplate> ChatTemplate::from_name(std::string_view name, std::string bos, std::string eos) {
  for (const auto& [family, n] : kNames) {
    if (n != name) continue;
    ChatTemplate t;
    t.family_ = family;
    t.bos_ = std::move(bos);
    t.eos_ = std::move(eos);
    return t;
  }
  return InvalidArgument("unknown chat template \"" + std::string(name) + "\" (known: " + chat_family_names() + ")");
}

Result<ChatTemplate> ChatTemplate::from_jinja(std::string_view jinja, std::string bos, std::string eos) {
  if (jinja.empty()) {
    return FailedPrecondition("the model has no chat template; name one (" + chat_family_names() + ")");
  }
  std::string_view family;
  if (contains(jinja, "<|start_header_id|>") && contains(jinja, "<|end_header_id|>")) {
    family = "llama3";
  } else if (contains(jinja, "<|im_start|>")) {
    family = "chatml";
  } else if (contains(jinja, "<start_of_turn>")) {
    family = "gemma";
  } else if (contains(jinja, "[INST]")) {
    // v0.1 and v0.2 put a space before [/INST]; v0.3 (the v3 tokenizer,
    // where the markers are control tokens) only after [INST]. Tekken's
    // "[INST]Hi[/INST]" and the [SYSTEM_PROMPT] templates are neither, and
    // rendering them as either would silently degrade the model.
    if (contains(jinja, "<<SYS>>")) {
      family = "llama2";
    } else if (contains(jinja, " [/INST]")) {
      family = "mistral";
    } else if (contains(jinja, "[INST] ") && !contains(jinja, "[SYSTEM_PROMPT]")) {
      family = "mistral-v3";
    } else {
      return Unimplemented("chat template not recognised: an [INST] template of neither Mistral v0.1's form "
                           "(\" [/INST]\") nor v0.3's (\"[INST] \", no [SYSTEM_PROMPT]), e.g. a Tekken one; name a "
                           "family if one fits (" + chat_family_names() + ")");
    }
  } else if (contains(jinja, "<|user|>") && contains(jinja, "<|assistant|>") && !contains(jinja, "<|end|>")) {
    family = "zephyr";
  } else {
    std::string head(jinja.substr(0, 120));
    return Unimplemented("chat template not recognised: none of <|start_header_id|>, <|im_start|>, "
                         "<start_of_turn>, [INST], <|user|>+<|assistant|> (without <|end|>) in it; it begins \"" +
                         head + (jinja.size() > head.size() ? "...\"" : "\""));
  }
  TANDEM_ASSIGN_OR_RETURN(ChatTemplate t, from_name(family, std::move(bos), std::move(eos)));
  if (t.family_ == ChatFamily::kChatml) t.default_system_ = chatml_default_system(jinja);
  if (t.family_ == ChatFamily::kGemma) t.gemma_system_prefix_ = contains(jinja, "first_user_prefix");
  return t;
}

Result<std::string> ChatTemplate::render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  TANDEM_RETURN_IF_ERROR(check_roles(messages));
  const bool has_system = !messages.empty() && messages[0].role == "system";
  const size_t first = has_system ? 1 : 0;
  std::string out;
  switch (family_) {
    case ChatFamily::kLlama3:
      for (const ChatMessage& m : messages) {
        append(out, {"<|start_header_id|>", m.role, "<|end_header_id|>\n\n", trim(m.content), "<|eot_id|>"});
      }
      if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      return out;

    case ChatFamily::kChatml:
      if (!has_system && !default_system_.empty()) {
        append(out, {"<|im_start|>system\n", default_system_, "<|im_end|>\n"});
      }
      for (const ChatMessage& m : messages) append(out, {"<|im_start|>", m.role, "\n", m.content, "<|im_end|>\n"});
      if (add_generation_prompt) out += "<|im_start|>assistant\n";
      return out;

    case ChatFamily::kGemma: {
      if (has_system && !gemma_system_prefix_) return InvalidArgument("gemma: the system role is not supported");
      TANDEM_RETURN_IF_ERROR(check_alternating(messages, first, "gemma"));
      for (size_t i = first; i < messages.size(); ++i) {
        const ChatMessage& m = messages[i];
        append(out, {"<start_of_turn>", m.role == "assistant" ? std::string_view("model") : m.role, "\n"});
        if (i == first && has_system) append(out, {messages[0].content, "\n\n"});
        append(out, {trim(m.content), "<end_of_turn>\n"});
      }
      if (add_generation_prompt) out += "<start_of_turn>model\n";
      return out;
    }

    case ChatFamily::kLlama2:
      TANDEM_RETURN_IF_ERROR(check_alternating(messages, first, "llama2"));
      for (size_t i = first; i < messages.size(); ++i) {
        const ChatMessage& m = messages[i];
        std::string content;
        if (i == first && has_system) append(content, {"<<SYS>>\n", messages[0].content, "\n<</SYS>>\n\n"});
        content += m.content;
        if (m.role == "user") {
          append(out, {i == first ? std::string_view() : bos_, "[INST] ", trim(content), " [/INST]"});
        } else {
          append(out, {" ", trim(content), " ", eos_});
        }
      }
      return out;

    case ChatFamily::kMistral:
      if (has_system) return InvalidArgument("mistral: only user and assistant roles are supported");
      TANDEM_RETURN_IF_ERROR(check_alternating(messages, 0, "mistral"));
      for (const ChatMessage& m : messages) {
        if (m.role == "user") {
          append(out, {"[INST] ", m.content, " [/INST]"});
        } else {
          append(out, {m.content, eos_});
        }
      }
      return out;

    case ChatFamily::kMistralV3: {
      TANDEM_RETURN_IF_ERROR(check_alternating(messages, first, "mistral-v3"));
      for (size_t i = first; i < messages.size(); ++i) {
        const ChatMessage& m = messages[i];
        if (m.role == "user") {
          // The template puts the system message before the conversation's
          // last message only when that is a user turn (Mistral's own
          // tokenizer puts it before the last user message).
          const bool system_here = has_system && i + 1 == messages.size();
          append(out, {"[INST] ", system_here ? std::string_view(messages[0].content) : std::string_view(),
                       system_here ? "\n\n" : "", m.content, "[/INST]"});
        } else {
          append(out, {" ", trim(m.content), eos_});
        }
      }
      return out;
    }

    case ChatFamily::kZephyr:
      for (const ChatMessage& m : messages) append(out, {"<|", m.role, "|>\n", m.content, eos_, "\n"});
      if (add_generation_prompt) out += "<|assistant|>\n";
      return out;
  }
  return Internal("unhandled chat family");
}

}  // namespace tandem
