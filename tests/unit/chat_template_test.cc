// Chat templates: each family recognised from its official Jinja text (as the
// models' tokenizer_config.json carry it) and rendered to the string that
// Jinja template produces, written out here by hand from the template.
#include "runtime/chat_template.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace tandem {
namespace {

// Meta-Llama-3-8B-Instruct.
const char kLlama3[] =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + "
    "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";
// Qwen2-7B-Instruct.
const char kQwen2[] =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
    "'<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + "
    "message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt "
    "%}{{ '<|im_start|>assistant\\n' }}{% endif %}";
// A plain ChatML template (no default system prompt).
const char kChatml[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
// Llama-2-7b-chat-hf.
const char kLlama2[] =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
    "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif "
    "%}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
    "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
    "loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
    "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if "
    "message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] "
    "== 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";
// Mistral-7B-Instruct-v0.1.
const char kMistral[] =
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
    "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
    "message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == "
    "'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles "
    "are supported!') }}{% endif %}{% endfor %}";
// Mistral-7B-Instruct-v0.3's form (the template's tool branches left out):
// the system message before the last user message, no space before [/INST].
const char kMistralV3[] =
    "{%- if messages[0][\"role\"] == \"system\" %}{%- set system_message = messages[0][\"content\"] %}{%- set "
    "loop_messages = messages[1:] %}{%- else %}{%- set loop_messages = messages %}{%- endif %}{{- bos_token }}{%- "
    "for message in loop_messages %}{%- if (message[\"role\"] == \"user\") != (loop.index0 % 2 == 0) %}{{- "
    "raise_exception(\"After the optional system message, conversation roles must alternate user/assistant/user/"
    "assistant/...\") }}{%- endif %}{%- if message[\"role\"] == \"user\" %}{%- if loop.last and system_message is "
    "defined %}{{- \"[INST] \" + system_message + \"\\n\\n\" + message[\"content\"] + \"[/INST]\" }}{%- else %}{{- "
    "\"[INST] \" + message[\"content\"] + \"[/INST]\" }}{%- endif %}{%- elif message[\"role\"] == \"assistant\" "
    "%}{{- \" \" + message[\"content\"]|trim + eos_token}}{%- endif %}{%- endfor %}";
// gemma-7b-it.
const char kGemma[] =
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% "
    "endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
    "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
    "(message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif "
    "%}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}{% if "
    "add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}";
// zephyr-7b-beta.
const char kZephyr[] =
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + "
    "eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% "
    "elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif "
    "%}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";

ChatTemplate make(const char* jinja, const std::string& bos = "<s>", const std::string& eos = "</s>") {
  Result<ChatTemplate> t = ChatTemplate::from_jinja(jinja, bos, eos);
  EXPECT_TRUE(t.ok()) << t.status().to_string();
  if (!t.ok()) std::abort();
  return *t;
}

std::string render(const ChatTemplate& t, const std::vector<ChatMessage>& m, bool gen = true) {
  Result<std::string> r = t.render(m, gen);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? *r : "";
}

const std::vector<ChatMessage> kSysUser = {{"system", "Be brief."}, {"user", " Hi there \n"}};
const std::vector<ChatMessage> kTwoTurns = {
    {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "How are you?"}};

TEST(ChatTemplate, Llama3) {
  const ChatTemplate t = make(kLlama3, "<|begin_of_text|>", "<|end_of_text|>");
  EXPECT_EQ(t.family(), ChatFamily::kLlama3);
  EXPECT_EQ(render(t, kSysUser),
            "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(render(t, kTwoTurns, false),
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHow are you?<|eot_id|>");
}

TEST(ChatTemplate, ChatmlAndQwen2sDefaultSystemPrompt) {
  const ChatTemplate qwen = make(kQwen2, "", "<|im_end|>");
  EXPECT_EQ(qwen.family(), ChatFamily::kChatml);
  EXPECT_EQ(qwen.default_system(), "You are a helpful assistant.");
  EXPECT_EQ(render(qwen, {{"user", "Hi"}}),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(render(qwen, kSysUser, false),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n Hi there \n<|im_end|>\n");
  const ChatTemplate plain = make(kChatml);
  EXPECT_EQ(plain.default_system(), "");
  EXPECT_EQ(render(plain, {{"user", "Hi"}}), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, Llama2) {
  const ChatTemplate t = make(kLlama2);
  EXPECT_EQ(t.family(), ChatFamily::kLlama2);
  // The leading bos_token is left to the tokenizer; later turns keep theirs.
  // strip() applies to the whole content, the system block included, so the
  // user text's leading space stays.
  EXPECT_EQ(render(t, kSysUser), "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n Hi there [/INST]");
  EXPECT_EQ(render(t, kTwoTurns), "[INST] Hi [/INST] Hello! </s><s>[INST] How are you? [/INST]");
  EXPECT_EQ(t.render({{"assistant", "x"}}, true).status().code(), StatusCode::kInvalidArgument);
}

TEST(ChatTemplate, Mistral) {
  const ChatTemplate t = make(kMistral);
  EXPECT_EQ(t.family(), ChatFamily::kMistral);
  EXPECT_EQ(render(t, kTwoTurns), "[INST] Hi [/INST]Hello!</s>[INST] How are you? [/INST]");
  EXPECT_EQ(t.render(kSysUser, true).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(t.render({{"user", "a"}, {"user", "b"}}, true).status().code(), StatusCode::kInvalidArgument);
}

TEST(ChatTemplate, MistralV3) {
  const ChatTemplate t = make(kMistralV3);
  EXPECT_EQ(t.family(), ChatFamily::kMistralV3);
  EXPECT_EQ(render(t, kTwoTurns), "[INST] Hi[/INST] Hello!</s>[INST] How are you?[/INST]");
  // The system message goes before the last user message, not the first.
  EXPECT_EQ(render(t, {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "And you?"}}),
            "[INST] Hi[/INST] Hello!</s>[INST] Be brief.\n\nAnd you?[/INST]");
  EXPECT_EQ(t.render({{"user", "a"}, {"user", "b"}}, true).status().code(), StatusCode::kInvalidArgument);
  // v0.1's template is still told apart by its " [/INST]".
  EXPECT_EQ(make(kMistral).family(), ChatFamily::kMistral);
  EXPECT_EQ(ChatTemplate::from_name("mistral-v3", "<s>", "</s>")->family(), ChatFamily::kMistralV3);
  // Tekken's form (no space after [INST]) and [SYSTEM_PROMPT] templates are
  // neither: refused, not rendered as one of them.
  const char kTekken[] =
      "{{- bos_token }}{%- for message in messages %}{%- if message['role'] == 'user' %}{{- '[INST]' + "
      "message['content'] + '[/INST]' }}{%- else %}{{- message['content'] + eos_token }}{%- endif %}{%- endfor %}";
  const Result<ChatTemplate> tekken = ChatTemplate::from_jinja(kTekken, "<s>", "</s>");
  EXPECT_EQ(tekken.status().code(), StatusCode::kUnimplemented) << tekken.status().to_string();
  const std::string with_system = std::string(kMistralV3) + "{{- '[SYSTEM_PROMPT]' }}";
  EXPECT_EQ(ChatTemplate::from_jinja(with_system, "<s>", "</s>").status().code(), StatusCode::kUnimplemented);
}

TEST(ChatTemplate, Gemma) {
  const ChatTemplate t = make(kGemma, "<bos>", "<eos>");
  EXPECT_EQ(t.family(), ChatFamily::kGemma);
  EXPECT_EQ(render(t, kTwoTurns),
            "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
            "<start_of_turn>user\nHow are you?<end_of_turn>\n<start_of_turn>model\n");
  const Result<std::string> sys = t.render(kSysUser, true);
  EXPECT_EQ(sys.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(sys.status().message().find("system role"), std::string::npos);
}

// The lines of gemma-3-it's template that handle a system message (its
// whole text also covers images): the system text and a blank line open the
// first user turn.
const char kGemma3SystemPart[] =
    "{%- if messages[0]['role'] == 'system' -%}{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}{%- else -%}{%- set first_user_prefix = \"\" -%}{%- set loop_messages "
    "= messages -%}{%- endif -%}{%- for message in loop_messages -%}{{ '<start_of_turn>' + role + '\n' + "
    "(first_user_prefix if loop.first else \"\") }}{{ message['content'] | trim }}{{ '<end_of_turn>\n' }}{%- endfor -%}";

TEST(ChatTemplate, Gemma3FoldsTheSystemMessageIntoTheFirstUserTurn) {
  const ChatTemplate t = make(kGemma3SystemPart, "<bos>", "<eos>");
  EXPECT_EQ(t.family(), ChatFamily::kGemma);
  EXPECT_EQ(render(t, kSysUser), "<start_of_turn>user\nBe brief.\n\nHi there<end_of_turn>\n<start_of_turn>model\n");
}

TEST(ChatTemplate, Zephyr) {
  const ChatTemplate t = make(kZephyr);
  EXPECT_EQ(t.family(), ChatFamily::kZephyr);
  // The model card's own example.
  EXPECT_EQ(render(t, {{"system", "You are a friendly chatbot who always responds in the style of a pirate"},
                       {"user", "How many helicopters can a human eat in one sitting?"}}),
            "<|system|>\nYou are a friendly chatbot who always responds in the style of a pirate</s>\n"
            "<|user|>\nHow many helicopters can a human eat in one sitting?</s>\n<|assistant|>\n");
}

TEST(ChatTemplate, UnknownEmptyAndNamed) {
  const Result<ChatTemplate> odd = ChatTemplate::from_jinja("{{ messages[0]['content'] }} ### Response:", "", "");
  EXPECT_EQ(odd.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(odd.status().message().find("### Response:"), std::string::npos) << odd.status().to_string();
  EXPECT_EQ(ChatTemplate::from_jinja("", "", "").status().code(), StatusCode::kFailedPrecondition);
  Result<ChatTemplate> named = ChatTemplate::from_name("chatml", "", "");
  ASSERT_TRUE(named.ok());
  EXPECT_EQ(named->family(), ChatFamily::kChatml);
  EXPECT_EQ(ChatTemplate::from_name("vicuna", "", "").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(named->render({{"tool", "x"}}, true).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(named->render({{"user", "x"}, {"system", "y"}}, true).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tandem
