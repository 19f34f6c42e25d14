// The Jinja subset and HfChatTemplate on their own (no Python): each refusal names the template,
// the construct and the line; raise_exception carries its message; where the template comes
// from in a model folder; turns that cannot be split are refused. The byte-for-byte behaviour is
// held to transformers by text_chat_template_parity_test.cc.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "lm/text/hf_chat_template.h"
#include "lm/text/jinja_template.h"
#include "lm/text/jinja_value.h"
#include "lm/trainer_error.h"

namespace tuneledger::train {
namespace {

namespace fs = std::filesystem;
using jinja::JinjaTemplate;
using jinja::Value;
using nlohmann::json;
using ::testing::HasSubstr;

constexpr const char* kWhere = "model/tokenizer_config.json: chat_template";

std::string Render(const std::string& source, jinja::Variables variables = {}) {
  return JinjaTemplate(source, kWhere).Render(variables);
}

// The TrainError message of rendering (or parsing) `source`; "" when it renders.
std::string ErrorOf(const std::string& source, jinja::Variables variables = {}) {
  try {
    Render(source, std::move(variables));
  } catch (const TrainError& e) {
    return e.what();
  }
  return "";
}

Value Messages(const char* json_text) { return jinja::FromJson(json::parse(json_text)); }

TEST(JinjaTemplateTest, RendersTextExpressionsAndStatements) {
  EXPECT_EQ(Render("a{{ 1 + 2 }}b"), "a3b");
  EXPECT_EQ(Render("{% for x in [1, 2, 3] %}{{ x }}{% if not loop.last %},{% endif %}{% endfor %}"),
            "1,2,3");
  EXPECT_EQ(Render("{% set ns = namespace(n=0) %}{% for x in 'abc' %}{% set ns.n = ns.n + 1 %}"
                   "{% endfor %}{{ ns.n }}"),
            "3");
  EXPECT_EQ(Render("{{ name | default('anon') }} {{ [1, 'a', none, true] }}"),
            "anon [1, 'a', None, True]");
  EXPECT_EQ(Render("{{ x[::-1] }}", {{"x", Value::String("h\xc3\xa9!")}}), "!\xc3\xa9h");
}

TEST(JinjaTemplateTest, TrimsBlocksAndStripsTheirIndentation) {
  EXPECT_EQ(Render("<\n  {% if true %}\n  x\n  {% endif %}\n>"), "<\n  x\n>");
  EXPECT_EQ(Render("a  {{- 'b' -}}  c"), "abc");
  EXPECT_EQ(Render("a\n  {%+ if true %}b{% endif %}"), "a\n  b");
  EXPECT_EQ(Render("x\n"), "x");  // one trailing newline is dropped, as jinja2 does
}

TEST(JinjaTemplateTest, UnsupportedConstructsAreNamedWithTheirLine) {
  EXPECT_EQ(ErrorOf("x\n{% filter upper %}a{% endfilter %}"),
            std::string(kWhere) + ": unsupported Jinja construct 'filter' at line 2");
  EXPECT_EQ(ErrorOf("{% include 'other.jinja' %}"),
            std::string(kWhere) + ": unsupported Jinja construct 'include' at line 1");
  EXPECT_EQ(ErrorOf("\n\n{{ x | wordwrap(10) }}"),
            std::string(kWhere) + ": unsupported Jinja construct 'filter wordwrap' at line 3");
  EXPECT_EQ(ErrorOf("{{ x is sameas y }}"),
            std::string(kWhere) + ": unsupported Jinja construct 'test sameas' at line 1");
  EXPECT_EQ(ErrorOf("{% raw %}{{ x }}{% endraw %}"),
            std::string(kWhere) + ": unsupported Jinja construct 'raw' at line 1");
  // Only seen when called: a method outside the subset.
  EXPECT_EQ(ErrorOf("\n{{ '{}'.format(1) }}"),
            std::string(kWhere) + ": unsupported Jinja construct 'str.format' at line 2");
  EXPECT_EQ(ErrorOf("{{ '%s' % 'x' }}"),
            std::string(kWhere) +
                ": unsupported Jinja construct 'printf-style '%' string formatting' at line 1");
  // A branch not taken still refuses its filter: the check is at parse time.
  EXPECT_THAT(ErrorOf("{% if false %}{{ x | batch(2) }}{% endif %}"),
              HasSubstr("unsupported Jinja construct 'filter batch'"));
}

TEST(JinjaTemplateTest, RaiseExceptionCarriesTheMessage) {
  EXPECT_EQ(ErrorOf("ok\n{{ raise_exception('Conversation roles must alternate') }}"),
            std::string(kWhere) + ": raise_exception at line 2: Conversation roles must alternate");
}

// Values the template was given come from a user's data file: no error quotes them.
TEST(JinjaTemplateTest, ErrorsNeverQuoteTheValuesGiven) {
  const jinja::Variables secret = {{"s", Value::String("AKIA-SECRET-VALUE")}};
  EXPECT_EQ(ErrorOf("{{ raise_exception('Unknown role: ' + s) }}", secret),
            std::string(kWhere) +
                ": raise_exception at line 1 (its message is not a literal of the template, so "
                "it may quote the data, and is left out)");
  EXPECT_EQ(
      ErrorOf("{{ {}[s].x }}", secret),
      std::string(kWhere) + ": line 1: ''dict object' has no item of type 'str'' is undefined");
  EXPECT_EQ(
      ErrorOf("{{ ''[s].x }}", secret),
      std::string(kWhere) + ": line 1: ''str object' has no item of type 'str'' is undefined");
}

TEST(JinjaTemplateTest, ErrorsPythonWouldRaiseNameTheLine) {
  EXPECT_EQ(ErrorOf("{{ missing.attr }}"),
            std::string(kWhere) + ": line 1: 'missing' is undefined");
  EXPECT_EQ(ErrorOf("{{ 1 / 0 }}"), std::string(kWhere) + ": line 1: division by zero");
  EXPECT_THAT(ErrorOf("{{ [1] + 'a' }}"), HasSubstr("unsupported operand type(s) for +"));
  EXPECT_THAT(ErrorOf("{% if %}"), HasSubstr(": syntax error at line 1"));
  EXPECT_THAT(ErrorOf("{% for x in y %}"), HasSubstr("syntax error at line 1: unexpected end"));
  EXPECT_THAT(ErrorOf("{% endif %}"), HasSubstr("syntax error at line 1: unexpected 'endif'"));
}

TEST(JinjaValueTest, PrintsLikePython) {
  EXPECT_EQ(jinja::FloatRepr(1.0), "1.0");
  EXPECT_EQ(jinja::FloatRepr(1e16), "1e+16");
  EXPECT_EQ(jinja::FloatRepr(1.5e-5), "1.5e-05");
  EXPECT_EQ(jinja::FloatRepr(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(jinja::FloatRepr(-0.0), "-0.0");
  EXPECT_EQ(jinja::FloatRepr(123456789.0), "123456789.0");
  EXPECT_EQ(jinja::Repr(Value::String("it's")), "\"it's\"");
  EXPECT_EQ(jinja::Repr(Value::String("a\tb\xc2\xa0")), "'a\\tb\\xa0'");
  jinja::DumpOptions options;
  EXPECT_EQ(jinja::DumpJson(Value::String("\xc3\xa9\x01"), options), "\"\xc3\xa9\\u0001\"");
  options.ensure_ascii = true;
  EXPECT_EQ(jinja::DumpJson(Value::String("\xc3\xa9\xf0\x9f\xa4\x96"), options),
            "\"\\u00e9\\ud83e\\udd16\"");
}

class ModelDir {
 public:
  ModelDir() {
    char pattern[] = "/tmp/tuneledger_chat_template_XXXXXX";
    path_ = ::mkdtemp(pattern);
  }
  ~ModelDir() { fs::remove_all(path_); }
  void Write(const std::string& name, const std::string& content) const {
    std::ofstream(path_ + "/" + name) << content;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(HfChatTemplateTest, ReadsTheTemplateWhereTransformersDoes) {
  ModelDir dir;
  EXPECT_EQ(HfChatTemplate::FromModelDir(dir.path()), nullptr);  // no config at all
  dir.Write("tokenizer_config.json", R"({"eos_token": {"content": "</s>"}})");
  EXPECT_EQ(HfChatTemplate::FromModelDir(dir.path()), nullptr);  // no chat_template
  dir.Write("tokenizer_config.json",
            R"({"eos_token": {"content": "</s>"}, "bos_token": null, "chat_template": [
                 {"name": "tool_use", "template": "tools"},
                 {"name": "default", "template": "{{ bos_token is defined }}{{ eos_token }}"}]})");
  auto chat_template = HfChatTemplate::FromModelDir(dir.path());
  ASSERT_NE(chat_template, nullptr);
  EXPECT_EQ(chat_template->Render(Messages("[]"), false), "False</s>");
  dir.Write("chat_template.jinja", "from the file");
  EXPECT_EQ(HfChatTemplate::FromModelDir(dir.path())->Render(Messages("[]"), false),
            "from the file");
}

TEST(HfChatTemplateTest, NamedTemplatesNeedADefault) {
  ModelDir dir;
  dir.Write("tokenizer_config.json", R"({"chat_template": [{"name": "a", "template": "x"}]})");
  try {
    HfChatTemplate::FromModelDir(dir.path());
    FAIL() << "accepted";
  } catch (const TrainError& e) {
    EXPECT_THAT(e.what(), HasSubstr("tokenizer_config.json: chat_template: a list of named "
                                    "templates without one named \"default\""));
  }
}

TEST(HfChatTemplateTest, SplitsAssistantTurns) {
  const HfChatTemplate chat_template(
      "{% for m in messages %}<{{ m.role }}>{{ m.content }}</s>\n{% endfor %}"
      "{% if add_generation_prompt %}<assistant>{% endif %}",
      kWhere, {{"eos_token", "</s>"}});
  const Value messages = Messages(R"([{"role": "user", "content": "hi"},
                                      {"role": "assistant", "content": "yo"},
                                      {"role": "user", "content": "again"},
                                      {"role": "assistant", "content": "ok"}])");
  const HfChatTemplate::Turns turns = chat_template.SplitTurns(messages);
  EXPECT_EQ(turns.text, "<user>hi</s>\n<assistant>yo</s>\n<user>again</s>\n<assistant>ok</s>\n");
  ASSERT_EQ(turns.assistant_spans.size(), 2u);
  auto span = [&](size_t i) {
    return turns.text.substr(turns.assistant_spans[i].first,
                             turns.assistant_spans[i].second - turns.assistant_spans[i].first);
  };
  EXPECT_EQ(span(0), "yo</s>");  // the newline after the end-of-turn token is not the model's
  EXPECT_EQ(span(1), "ok</s>");
}

TEST(HfChatTemplateTest, RefusesATemplateThatRewritesEarlierTurns) {
  // Only the last assistant message keeps its content, as templates that drop reasoning do.
  const HfChatTemplate chat_template(
      "{% for m in messages %}<{{ m.role }}>{% if m.role != 'assistant' or loop.last %}"
      "{{ m.content }}{% endif %};{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}",
      kWhere, {});
  const Value messages = Messages(R"([{"role": "user", "content": "a"},
                                      {"role": "assistant", "content": "b"},
                                      {"role": "user", "content": "c"}])");
  try {
    chat_template.SplitTurns(messages);
    FAIL() << "split";
  } catch (const TrainError& e) {
    EXPECT_THAT(e.what(), HasSubstr(std::string(kWhere) +
                                    ": cannot split the template into turns: assistant "
                                    "messages[1] renders differently alone than inside the whole "
                                    "conversation"));
  }
}

}  // namespace
}  // namespace tuneledger::train
