#include "server/core/model_card.h"

#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "base/bounded_text.h"
#include "base/utf8.h"

namespace tuneledger {
namespace {

constexpr size_t kMaxReadBytes = 64 * 1024;
constexpr size_t kMaxValueBytes = 256;

std::optional<std::string> ReadPrefix(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string bytes(kMaxReadBytes, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  bytes.resize(static_cast<size_t>(in.gcount()));
  return bytes;
}

// A YAML scalar as written in front matter: surrounding quotes removed.
std::string Unquote(absl::string_view value) {
  value = absl::StripAsciiWhitespace(value);
  if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
      value.back() == value.front()) {
    value = value.substr(1, value.size() - 2);
  }
  return std::string(value);
}

// At most kMaxValueBytes, and valid UTF-8 (a proto string field must be).
std::string Bounded(const std::string& value) {
  if (!Utf8Length(value).has_value()) return "(not valid UTF-8)";
  return BoundedText(value, kMaxValueBytes);
}

// Top-level keys of the front matter and their values; a key with no inline value takes the
// "- item" lines under it, joined by ", ". Nested mappings are ignored.
std::map<std::string, std::string> FrontMatter(const std::string& readme) {
  std::map<std::string, std::string> keys;
  std::vector<absl::string_view> lines = absl::StrSplit(readme, '\n');
  if (lines.empty() || absl::StripAsciiWhitespace(lines[0]) != "---") return keys;
  std::string list_key;
  std::vector<std::string> items;
  auto flush = [&]() {
    if (!list_key.empty() && !items.empty()) keys[list_key] = absl::StrJoin(items, ", ");
    list_key.clear();
    items.clear();
  };
  for (size_t i = 1; i < lines.size(); ++i) {
    const absl::string_view line = absl::StripTrailingAsciiWhitespace(lines[i]);
    if (line == "---") break;
    const absl::string_view stripped = absl::StripLeadingAsciiWhitespace(line);
    if (!list_key.empty() && absl::StartsWith(stripped, "- ")) {
      items.push_back(Unquote(stripped.substr(2)));
      continue;
    }
    if (line.empty() || line.front() == ' ' || line.front() == '#' || line.front() == '-') continue;
    flush();
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos) continue;
    const std::string key(absl::StripAsciiWhitespace(line.substr(0, colon)));
    const std::string value = Unquote(line.substr(colon + 1));
    if (value.empty()) {
      list_key = key;
    } else {
      keys[key] = value;
    }
  }
  flush();
  return keys;
}

std::string FolderName(const std::string& dir) {
  absl::string_view path = dir;
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  const size_t slash = path.rfind('/');
  return std::string(slash == absl::string_view::npos ? path : path.substr(slash + 1));
}

}  // namespace

v1::BaseModel ReadBaseModel(const std::string& model_dir) {
  v1::BaseModel model;
  model.set_path(model_dir);
  model.set_source(Bounded(FolderName(model_dir)));
  model.set_license("unknown");
  if (std::optional<std::string> readme = ReadPrefix(model_dir + "/README.md")) {
    const std::map<std::string, std::string> keys = FrontMatter(*readme);
    for (const char* key : {"base_model", "model_name"}) {
      if (auto it = keys.find(key); it != keys.end() && !it->second.empty()) {
        model.set_source(Bounded(it->second));
        break;
      }
    }
    if (auto it = keys.find("license"); it != keys.end() && !it->second.empty()) {
      std::string license = it->second;
      if (auto name = keys.find("license_name"); name != keys.end() && !name->second.empty()) {
        license += " (" + name->second + ")";
      }
      model.set_license(Bounded(license));
      model.set_license_origin("README.md");
      return model;
    }
  }
  for (const char* name : {"LICENSE", "LICENSE.txt", "LICENSE.md", "LICENCE"}) {
    std::optional<std::string> text = ReadPrefix(model_dir + "/" + name);
    if (!text) continue;
    for (absl::string_view line : absl::StrSplit(*text, '\n')) {
      const absl::string_view stripped = absl::StripAsciiWhitespace(line);
      if (stripped.empty()) continue;
      model.set_license(Bounded(std::string(stripped)));
      model.set_license_origin(name);
      return model;
    }
  }
  return model;
}

}  // namespace tuneledger
