#include "base/data_roots.h"

#include <filesystem>
#include <system_error>

namespace tuneledger {
namespace {

namespace fs = std::filesystem;

// `path` with every existing prefix's links resolved (the rest lexically normalised).
std::optional<fs::path> Canonical(const fs::path& path) {
  std::error_code error;
  fs::path canonical = fs::weakly_canonical(path, error);
  if (error) return std::nullopt;
  return canonical;
}

bool Inside(const fs::path& path, const fs::path& root) {
  auto p = path.begin();
  for (auto r = root.begin(); r != root.end(); ++r, ++p) {
    if (r->empty()) continue;  // a trailing separator
    if (p == path.end() || *p != *r) return false;
  }
  return true;
}

}  // namespace

std::optional<DataRoots> DataRoots::Parse(const std::vector<std::string>& values,
                                          std::string* error) {
  DataRoots roots;
  for (const std::string& value : values) {
    Root root;
    std::string dir = value;
    if (const size_t equals = value.find('='); equals != std::string::npos) {
      root.tenant = value.substr(0, equals);
      dir = value.substr(equals + 1);
      if (root.tenant.empty()) {
        *error = "a tenant root is TENANT=DIR, got '" + value + "'";
        return std::nullopt;
      }
    }
    std::error_code fs_error;
    if (dir.empty() || !fs::is_directory(dir, fs_error)) {
      *error = "not a folder: '" + dir + "'";
      return std::nullopt;
    }
    const fs::path canonical = fs::canonical(dir, fs_error);
    if (fs_error) {
      *error = "cannot resolve '" + dir + "': " + fs_error.message();
      return std::nullopt;
    }
    root.dir = canonical.string();
    roots.roots_.push_back(root);
  }
  return roots;
}

std::optional<std::string> DataRoots::Resolve(const std::string& tenant, const std::string& path,
                                              bool any_tenant) const {
  if (path.empty()) return std::nullopt;
  std::vector<const Root*> mine;
  for (const Root& root : roots_) {
    if (!root.tenant.empty() && root.tenant == tenant) mine.push_back(&root);
  }
  for (const Root& root : roots_) {
    if (root.tenant.empty() || (any_tenant && root.tenant != tenant)) mine.push_back(&root);
  }
  const fs::path given(path);
  if (given.is_absolute()) {
    const std::optional<fs::path> canonical = Canonical(given);
    if (!canonical) return std::nullopt;
    for (const Root* root : mine) {
      if (Inside(*canonical, root->dir)) return canonical->string();
    }
    return std::nullopt;
  }
  std::optional<std::string> first_inside;
  for (const Root* root : mine) {
    const std::optional<fs::path> canonical = Canonical(fs::path(root->dir) / given);
    if (!canonical || !Inside(*canonical, root->dir)) continue;
    std::error_code error;
    if (fs::exists(*canonical, error)) return canonical->string();
    if (!first_inside) first_inside = canonical->string();
  }
  return first_inside;
}

std::string DataRoots::Describe() const {
  std::string text;
  for (const Root& root : roots_) {
    if (!text.empty()) text += ", ";
    text += root.dir;
    if (!root.tenant.empty()) text += " (tenant " + root.tenant + ")";
  }
  return text.empty() ? "none" : text;
}

}  // namespace tuneledger
