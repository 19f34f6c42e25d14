// HfChatTemplate: a model's own chat template (Hugging Face), rendered byte for byte as
// transformers 5 renders tokenizer.apply_chat_template(messages, tokenize=False,
// add_generation_prompt=...), and split into turns so that only assistant turns train.
//
// Where the template comes from (transformers' order): <model>/chat_template.jinja, else
// tokenizer_config.json's "chat_template": a string, or a list of {"name", "template"} of which
// "default" is used. The variables are those transformers passes: messages (each message's
// null-valued keys dropped), tools = None, documents = None, add_generation_prompt, and the
// special tokens tokenizer_config.json names (bos_token, eos_token, unk_token, sep_token,
// pad_token, cls_token, mask_token and the names in a dict-valued extra_special_tokens; a string
// or {"content": ...}; null is left out). The Jinja subset and its errors: jinja_template.h.
//
// SplitTurns finds each assistant message's text by rendering prefixes of the conversation:
// P = messages[:i] with add_generation_prompt=True, W = messages[:i+1] without. P must be a
// prefix of W and of the whole conversation F; the assistant turn is F from the end of P to
// where W and F part (all of W when W is a prefix of F). W may go on past that point only with
// text F ends with too: the closing text some templates add at the very end of a conversation
// (Phi-3's eos_token). Anything else (a template that rewrites earlier turns) is a TrainError
// saying the template cannot be split into turns. Whitespace at the end of a turn (the "\n"
// after <|im_end|>) is left out of it: layout, not something the model should learn to say.
//
// Thread safety: immutable after construction; Render and SplitTurns may run concurrently.
#ifndef TUNELEDGER_LM_TEXT_HF_CHAT_TEMPLATE_H_
#define TUNELEDGER_LM_TEXT_HF_CHAT_TEMPLATE_H_

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <utility>
#include <vector>

#include "lm/text/jinja_template.h"

namespace tuneledger::train {

class HfChatTemplate {
 public:
  static constexpr const char* kJinjaFileName = "chat_template.jinja";
  static constexpr const char* kConfigFileName = "tokenizer_config.json";

  // The template of a model folder, or nullptr when it has none.
  static std::unique_ptr<HfChatTemplate> FromModelDir(const std::string& model_dir);

  // `source` is the template; `where` names it in errors ("<model>/tokenizer_config.json:
  // chat_template"); `special_tokens` are (name, text) pairs such as ("bos_token", "<s>").
  HfChatTemplate(const std::string& source, std::string where,
                 std::vector<std::pair<std::string, std::string>> special_tokens);

  // `messages` is a list of dicts (jinja::FromJson of a JSON array of message objects).
  std::string Render(const jinja::Value& messages, bool add_generation_prompt) const;

  struct Turns {
    std::string text;  // Render(messages, add_generation_prompt=false)
    // Byte ranges [begin, end) of `text`, one per assistant message, in order.
    std::vector<std::pair<size_t, size_t>> assistant_spans;
  };
  Turns SplitTurns(const jinja::Value& messages) const;

  // The text of a special token variable ("bos_token", ...), empty when not set.
  std::string SpecialToken(const std::string& name) const;
  const std::string& where() const { return template_.where(); }

 private:
  jinja::JinjaTemplate template_;
  jinja::Variables special_tokens_;
};

}  // namespace tuneledger::train

#endif  // TUNELEDGER_LM_TEXT_HF_CHAT_TEMPLATE_H_
