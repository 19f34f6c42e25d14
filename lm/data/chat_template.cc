#include "lm/data/chat_template.h"

#include "lm/trainer_error.h"

namespace tuneledger::train {
namespace {

constexpr const char* kEndOfTurn = "<|end|>\n";

std::string Header(const std::string& role) { return "<|" + role + "|>\n"; }

void CheckRole(const std::string& role, size_t index) {
  if (role != "system" && role != "user" && role != "assistant") {
    throw TrainError("messages[" + std::to_string(index) + "].role: must be system, user or " +
                     "assistant, got \"" + role + "\"");
  }
}

}  // namespace

std::vector<TemplateSegment> RenderChat(const std::vector<ChatMessage>& messages) {
  std::vector<TemplateSegment> segments;
  bool has_assistant = false;
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& message = messages[i];
    CheckRole(message.role, i);
    const bool trains = message.role == "assistant";
    has_assistant = has_assistant || trains;
    segments.push_back({Header(message.role), false});
    segments.push_back({message.content + kEndOfTurn, trains});
  }
  if (!has_assistant) throw TrainError("messages: no assistant turn, so nothing to train on");
  return segments;
}

std::string ChatGenerationPrompt(const std::vector<ChatMessage>& messages) {
  std::string prompt;
  for (size_t i = 0; i < messages.size(); ++i) {
    CheckRole(messages[i].role, i);
    prompt += Header(messages[i].role) + messages[i].content + kEndOfTurn;
  }
  return prompt + Header("assistant");
}

}  // namespace tuneledger::train
