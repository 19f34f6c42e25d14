#include "worker/trainer/recipe/checkpoint_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "base/work_dir_layout.h"
#include "lm/json_parse.h"
#include "lm/trainer_error.h"
#include "worker/trainer/model/safetensors_reader.h"
#include "worker/trainer/model/safetensors_writer.h"

namespace tuneledger::train {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string ErrnoText() { return std::strerror(errno); }

void FsyncPath(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), (directory ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw TrainError(path + ": cannot open for fsync: " + ErrnoText());
  const int rc = ::fsync(fd);
  const std::string error = rc != 0 ? ErrnoText() : "";
  ::close(fd);
  if (rc != 0) throw TrainError(path + ": fsync failed: " + error);
}

void WriteFileDurably(const std::string& path, const std::string& content) {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << content;
    out.close();
    if (!out) throw TrainError(path + ": write failed");
  }
  FsyncPath(path, /*directory=*/false);
}

// Complete checkpoints under root, oldest first.
std::vector<std::pair<int64_t, fs::path>> ListCheckpoints(const fs::path& root) {
  std::vector<std::pair<int64_t, fs::path>> found;
  std::error_code error;
  if (!fs::is_directory(root, error)) return found;
  for (const auto& entry : fs::directory_iterator(root, error)) {
    const std::optional<int64_t> step =
        layout::StepOfCheckpointDirName(entry.path().filename().string());
    if (step && entry.is_directory() && fs::exists(entry.path() / kCheckpointHeaderFile)) {
      found.emplace_back(*step, entry.path());
    }
  }
  std::sort(found.begin(), found.end());
  return found;
}

json NumberOrNull(const std::optional<double>& value) {
  return value && std::isfinite(*value) ? json(*value) : json(nullptr);
}

template <typename T>
T Field(const json& header, const char* name, const std::string& where) {
  const auto it = header.find(name);
  if (it == header.end()) throw TrainError(where + "header.json: missing field \"" + name + "\"");
  try {
    return it->get<T>();
  } catch (const json::exception& e) {
    throw TrainError(where + "header.json: field \"" + name +
                     "\" has the wrong type: " + it->dump());
  }
}

}  // namespace

std::string WriteCheckpoint(const std::string& root_dir, const TrainSnapshot& snapshot, int keep) {
  const fs::path root = fs::absolute(root_dir);
  const fs::path final_dir = root / layout::CheckpointDirName(snapshot.state.step);
  try {
    fs::create_directories(root);
    if (fs::exists(final_dir / kCheckpointHeaderFile)) return final_dir.string();
    // Leftovers of an interrupted write are never complete: remove them.
    for (const auto& entry : fs::directory_iterator(root)) {
      const std::string entry_name = entry.path().filename().string();
      if (entry.path().extension() == ".tmp" &&
          layout::StepOfCheckpointDirName(entry.path().stem().string())) {
        fs::remove_all(entry.path());
      }
    }
    const fs::path tmp_dir = root / layout::CheckpointTmpDirName(snapshot.state.step);
    fs::create_directories(tmp_dir);

    std::vector<std::pair<std::string, torch::Tensor>> tensors;
    json parameter_names = json::array();
    json adam_steps = json::array();
    for (size_t i = 0; i < snapshot.parameters.size(); ++i) {
      const auto& [param_name, value] = snapshot.parameters[i];
      parameter_names.push_back(param_name);
      tensors.emplace_back("param/" + param_name, value.contiguous());
      const AdamMoments& moments = snapshot.moments[i];
      adam_steps.push_back(moments.step);
      if (moments.step > 0) {
        tensors.emplace_back("exp_avg/" + param_name, moments.exp_avg.contiguous());
        tensors.emplace_back("exp_avg_sq/" + param_name, moments.exp_avg_sq.contiguous());
      }
    }
    for (size_t i = 0; i < snapshot.best_parameters.size(); ++i) {
      tensors.emplace_back("best/" + snapshot.parameters[i].first,
                           snapshot.best_parameters[i].contiguous());
    }
    tensors.emplace_back("rng/cpu", snapshot.cpu_rng_state.contiguous());
    if (snapshot.cuda_rng_state.defined()) {
      tensors.emplace_back("rng/cuda", snapshot.cuda_rng_state.contiguous());
    }
    WriteSafetensors((tmp_dir / kCheckpointTensorFile).string(), tensors);

    const TrainState& state = snapshot.state;
    json header = {{"format", kCheckpointFormat},
                   {"version", kCheckpointVersion},
                   {"step", state.step},
                   {"epoch", state.data.epoch},
                   {"batch_in_epoch", state.data.batch_in_epoch},
                   {"tokens", state.tokens},
                   {"loss_scale", state.loss_scaler.scale},
                   {"loss_scale_good_steps", state.loss_scaler.good_steps},
                   {"last_eval_loss", NumberOrNull(state.last_eval_loss)},
                   {"parameters", parameter_names},
                   {"adam_steps", adam_steps},
                   {"fingerprint", json::parse(snapshot.fingerprint)},
                   {"early_stop",
                    {{"best_eval_loss", NumberOrNull(state.best_eval_loss)},
                     {"best_step", state.best_step},
                     {"evals_since_best", state.evals_since_best},
                     {"lowest_recent_loss", NumberOrNull(state.lowest_recent_loss)},
                     {"best_parameters", !snapshot.best_parameters.empty()}}}};
    if (snapshot.data_selection) {
      header["data_selection"] = {{"method", snapshot.data_selection->method},
                                  {"keep_fraction", snapshot.data_selection->keep_fraction},
                                  {"kept", snapshot.data_selection->kept}};
    }
    WriteFileDurably((tmp_dir / kCheckpointHeaderFile).string(), header.dump(2) + "\n");
    FsyncPath(tmp_dir.string(), /*directory=*/true);
    fs::rename(tmp_dir, final_dir);
    FsyncPath(root.string(), /*directory=*/true);

    auto complete = ListCheckpoints(root);
    const size_t keep_count = static_cast<size_t>(std::max(1, keep));
    for (size_t i = 0; i + keep_count < complete.size(); ++i) fs::remove_all(complete[i].second);
  } catch (const fs::filesystem_error& e) {
    throw TrainError("writing checkpoint " + final_dir.string() + ": " + e.what());
  }
  return final_dir.string();
}

std::optional<std::string> FindLatestCheckpoint(const std::string& root) {
  const auto complete = ListCheckpoints(fs::path(root));
  if (complete.empty()) return std::nullopt;
  return fs::absolute(complete.back().second).string();
}

TrainSnapshot ReadCheckpoint(const std::string& dir) {
  const std::string where = "checkpoint " + dir + ": ";
  const fs::path header_path = fs::path(dir) / kCheckpointHeaderFile;
  std::ifstream in(header_path);
  if (!in) throw TrainError(where + "cannot open " + std::string(kCheckpointHeaderFile));
  const json header = ParseJsonOrThrow<json>(in, where + "header.json is ");
  if (!header.is_object()) throw TrainError(where + "header.json is not a JSON object");
  const auto format = header.find("format");
  if (format == header.end() || *format != kCheckpointFormat) {
    throw TrainError(where + "header.json: format is not \"" + kCheckpointFormat + "\"");
  }
  const int version = Field<int>(header, "version", where);
  if (version != kCheckpointVersion) {
    throw TrainError(where + "unsupported checkpoint version " + std::to_string(version) +
                     " (this trainer reads version " + std::to_string(kCheckpointVersion) + ")");
  }

  TrainSnapshot snapshot;
  TrainState& state = snapshot.state;
  state.step = Field<int64_t>(header, "step", where);
  state.data.epoch = Field<int64_t>(header, "epoch", where);
  state.data.batch_in_epoch = Field<int64_t>(header, "batch_in_epoch", where);
  state.tokens = Field<int64_t>(header, "tokens", where);
  state.loss_scaler.scale = Field<double>(header, "loss_scale", where);
  state.loss_scaler.good_steps = Field<int64_t>(header, "loss_scale_good_steps", where);
  const auto eval = header.find("last_eval_loss");
  if (eval != header.end() && eval->is_number()) state.last_eval_loss = eval->get<double>();
  if (state.step < 0 || state.data.epoch < 0 || state.data.batch_in_epoch < 0 || state.tokens < 0 ||
      !(state.loss_scaler.scale > 0)) {
    throw TrainError(where + "header.json holds a negative step, position or scale");
  }
  const auto names = Field<std::vector<std::string>>(header, "parameters", where);
  const auto adam_steps = Field<std::vector<int64_t>>(header, "adam_steps", where);
  if (adam_steps.size() != names.size()) {
    throw TrainError(where + "header.json: adam_steps has " + std::to_string(adam_steps.size()) +
                     " entries for " + std::to_string(names.size()) + " parameters");
  }
  const auto fingerprint = header.find("fingerprint");
  if (fingerprint == header.end() || !fingerprint->is_object()) {
    throw TrainError(where + "header.json: missing field \"fingerprint\"");
  }
  snapshot.fingerprint = fingerprint->dump();

  const std::string tensor_path = (fs::path(dir) / kCheckpointTensorFile).string();
  const SafetensorsFile tensors = SafetensorsFile::Open(tensor_path);
  auto require = [&](const std::string& name) {
    if (!tensors.Contains(name)) throw TrainError(where + "state.safetensors lacks " + name);
    return tensors.Tensor(name);
  };
  for (size_t i = 0; i < names.size(); ++i) {
    snapshot.parameters.emplace_back(names[i], require("param/" + names[i]));
    AdamMoments moments;
    moments.step = adam_steps[i];
    if (moments.step > 0) {
      moments.exp_avg = require("exp_avg/" + names[i]);
      moments.exp_avg_sq = require("exp_avg_sq/" + names[i]);
    }
    snapshot.moments.push_back(std::move(moments));
  }
  // Early stopping's bookkeeping; absent in checkpoints of runs without it.
  const auto early_stop = header.find("early_stop");
  if (early_stop != header.end() && early_stop->is_object()) {
    const std::string early_where = where + "header.json: early_stop: ";
    auto optional_number = [&](const char* field) -> std::optional<double> {
      const auto it = early_stop->find(field);
      if (it == early_stop->end() || it->is_null()) return std::nullopt;
      if (!it->is_number()) throw TrainError(early_where + field + " must be a number or null");
      return it->get<double>();
    };
    state.best_eval_loss = optional_number("best_eval_loss");
    state.lowest_recent_loss = optional_number("lowest_recent_loss");
    state.best_step = Field<int64_t>(*early_stop, "best_step", early_where);
    state.evals_since_best = Field<int64_t>(*early_stop, "evals_since_best", early_where);
    if (Field<bool>(*early_stop, "best_parameters", early_where)) {
      for (const std::string& name : names) {
        snapshot.best_parameters.push_back(require("best/" + name));
      }
    }
  }
  // The kept training examples of a run with data selection; absent without one.
  const auto selection = header.find("data_selection");
  if (selection != header.end()) {
    const std::string selection_where = where + "header.json: data_selection: ";
    if (!selection->is_object()) throw TrainError(selection_where + "must be an object");
    DataSelectionState& state_selection = snapshot.data_selection.emplace();
    state_selection.method = Field<std::string>(*selection, "method", selection_where);
    state_selection.keep_fraction = Field<double>(*selection, "keep_fraction", selection_where);
    state_selection.kept = Field<std::vector<int64_t>>(*selection, "kept", selection_where);
  }
  snapshot.cpu_rng_state = require("rng/cpu");
  if (tensors.Contains("rng/cuda")) snapshot.cuda_rng_state = tensors.Tensor("rng/cuda");
  return snapshot;
}

void CheckFingerprint(const std::string& dir, const std::string& checkpoint_fingerprint,
                      const std::string& current_fingerprint) {
  const json saved = json::parse(checkpoint_fingerprint);
  const json current = json::parse(current_fingerprint);
  if (saved == current) return;
  for (const auto& item : current.items()) {
    const auto it = saved.find(item.key());
    const std::string was = it == saved.end() ? "absent" : it->dump();
    if (it == saved.end() || *it != item.value()) {
      throw TrainError("checkpoint " + dir + ": written for a different job: " + item.key() +
                       " was " + was + ", now " + item.value().dump());
    }
  }
  throw TrainError("checkpoint " + dir + ": written for a different job (fingerprint differs)");
}

}  // namespace tuneledger::train
