// The chat template for {"messages": [{"role", "content"}, ...]} training data.
//
// A conversation becomes one token sequence:
//
//   [BOS]                                          when the tokenizer adds one (add_bos)
//   for each message:   "<|" role "|>\n"           no loss (the header is given, not predicted)
//                       content "<|end|>\n"        loss only when role == "assistant"
//   <EOS>                                          loss when the last message is the assistant's
//
// Roles are "system", "user" and "assistant"; a conversation needs at least one assistant turn
// (otherwise nothing would train). The same template renders a prompt for generation: the
// messages so far plus the header "<|assistant|>\n" (ChatGenerationPrompt).
//
// Segments are tokenized one by one and concatenated, so a SentencePiece tokenizer may split a
// boundary differently than it would split the whole string; the template's markers start with
// "<|" so that boundaries fall on characters that rarely merge with their neighbours.
//
// Thread safety: pure functions.
#ifndef TUNELEDGER_LM_DATA_CHAT_TEMPLATE_H_
#define TUNELEDGER_LM_DATA_CHAT_TEMPLATE_H_

#include <string>
#include <vector>

namespace tuneledger::train {

struct ChatMessage {
  std::string role;
  std::string content;
};

// One piece of rendered text and whether its tokens are training targets.
struct TemplateSegment {
  std::string text;
  bool trains = false;
};

// The segments between BOS and EOS (the caller adds those). Throws TrainError for an unknown
// role or a conversation without an assistant turn.
std::vector<TemplateSegment> RenderChat(const std::vector<ChatMessage>& messages);

// The text to feed a model to generate the next assistant turn.
std::string ChatGenerationPrompt(const std::vector<ChatMessage>& messages);

}  // namespace tuneledger::train

#endif  // TUNELEDGER_LM_DATA_CHAT_TEMPLATE_H_
