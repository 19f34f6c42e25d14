#include "server/core/job_store_rows.h"

#include <utility>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/compute_cost.h"
#include "base/status_macros.h"
#include "tuneledger/v1/worker.pb.h"

namespace tuneledger {

int64_t ToMicrosColumn(absl::Time time) { return absl::ToUnixMicros(time); }

absl::Time FromMicrosColumn(int64_t micros) { return absl::FromUnixMicros(micros); }

void SetTimestamp(absl::Time time, google::protobuf::Timestamp& out) {
  const int64_t micros = absl::ToUnixMicros(time);
  int64_t seconds = micros / 1'000'000;
  int64_t rest = micros % 1'000'000;
  if (rest < 0) {
    rest += 1'000'000;
    --seconds;
  }
  out.set_seconds(seconds);
  out.set_nanos(static_cast<int32_t>(rest * 1000));
}

absl::Time FromTimestamp(const google::protobuf::Timestamp& timestamp) {
  return absl::FromUnixSeconds(timestamp.seconds()) + absl::Nanoseconds(timestamp.nanos());
}

std::optional<int64_t> ParseJobId(const std::string& id) {
  // absl::SimpleAtoi alone would take " 1", "+1" and "01".
  if (id.empty() || id[0] == '0' || !absl::c_all_of(id, absl::ascii_isdigit)) return std::nullopt;
  int64_t value = 0;
  if (!absl::SimpleAtoi(id, &value)) return std::nullopt;  // past int64
  return value;
}

absl::Status ParseStoredMessage(const std::string& bytes, const std::string& what,
                                google::protobuf::MessageLite& message) {
  if (message.ParseFromString(bytes)) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat(what, ": stored ", message.GetTypeName(), " is damaged (",
                                          bytes.size(),
                                          " bytes do not parse); restore the database from a "
                                          "backup"));
}

namespace {

// A NULL column leaves the field absent (has_*() false), not present at the epoch.
template <typename Message>
void SetOptionalTimestamp(const Query& row, int column, Message& message,
                          google::protobuf::Timestamp* (Message::*mutable_field)()) {
  if (!row.IsNull(column))
    SetTimestamp(FromMicrosColumn(row.Int(column)), *(message.*mutable_field)());
}

}  // namespace

absl::StatusOr<v1::Job> JobFromRow(const Query& row, int first) {
  v1::Job job;
  job.set_id(absl::StrCat(row.Int(first + 0)));
  job.set_tenant(row.Text(first + 1));
  const std::string what = absl::StrCat("job ", job.id());
  TL_RETURN_IF_ERROR(ParseStoredMessage(row.Text(first + 2), what, *job.mutable_spec()));
  job.set_state(static_cast<v1::Job::State>(row.Int(first + 3)));
  job.set_reason(static_cast<v1::Job::Reason>(row.Int(first + 4)));
  job.set_message(row.Text(first + 5));
  job.set_attempts(static_cast<int32_t>(row.Int(first + 6)));
  job.set_worker_id(row.Text(first + 7));
  TL_RETURN_IF_ERROR(ParseStoredMessage(row.Text(first + 8), what, *job.mutable_progress()));
  v1::CostSummary& cost = *job.mutable_cost();
  cost.set_accrued_usd(row.Double(first + 9));
  cost.set_gpu_hours(row.Double(first + 10));
  cost.set_projected_usd(row.Double(first + 11));
  cost.set_rate_usd_per_hour(row.Double(first + 12));
  if (job.spec().budget().has_usd()) cost.set_budget_usd(job.spec().budget().usd());
  job.set_adapter_path(row.Text(first + 13));
  job.set_last_checkpoint(row.Text(first + 14));
  SetTimestamp(FromMicrosColumn(row.Int(first + 15)), *job.mutable_create_time());
  SetOptionalTimestamp(row, first + 16, job, &v1::Job::mutable_start_time);
  SetOptionalTimestamp(row, first + 17, job, &v1::Job::mutable_end_time);
  job.set_failed_attempts(static_cast<int32_t>(row.Int(first + 20)));
  job.set_preempted_attempts(static_cast<int32_t>(row.Int(first + 21)));
  return job;
}

v1::Job QueuedJobOf(int64_t id, const std::string& tenant, const v1::JobSpec& spec,
                    absl::Time create_time) {
  v1::Job job;
  job.set_id(absl::StrCat(id));
  job.set_tenant(tenant);
  *job.mutable_spec() = spec;
  job.set_state(v1::Job::QUEUED);
  job.mutable_progress();  // present and empty, as a parsed empty column
  v1::CostSummary& cost = *job.mutable_cost();
  if (spec.budget().has_usd()) cost.set_budget_usd(spec.budget().usd());
  SetTimestamp(FromMicrosColumn(ToMicrosColumn(create_time)), *job.mutable_create_time());
  return job;
}

BudgetState BudgetStateFromRow(const Query& row, int first) {
  BudgetState state;
  state.thresholds_crossed = static_cast<int>(row.Int(first + 18));
  state.overrun_raised = row.Int(first + 19) != 0;
  return state;
}

int64_t LogSeqFromRow(const Query& row, int first) { return row.Int(first + 22); }

v1::JobEvent EventFromRow(const Query& row, int first) {
  v1::JobEvent event;
  event.set_seq(row.Int(first + 0));
  event.set_job_id(absl::StrCat(row.Int(first + 1)));
  SetTimestamp(FromMicrosColumn(row.Int(first + 2)), *event.mutable_time());
  event.set_kind(static_cast<v1::JobEvent::Kind>(row.Int(first + 3)));
  event.set_state(static_cast<v1::Job::State>(row.Int(first + 4)));
  event.set_reason(static_cast<v1::Job::Reason>(row.Int(first + 5)));
  event.set_attempt(static_cast<int32_t>(row.Int(first + 6)));
  event.set_step(static_cast<int32_t>(row.Int(first + 7)));
  event.set_cost_usd(row.Double(first + 8));
  event.set_threshold(row.Double(first + 9));
  event.set_value(row.Double(first + 10));
  event.set_path(row.Text(first + 11));
  event.set_message(row.Text(first + 12));
  event.set_worker_id(row.Text(first + 13));
  return event;
}

v1::AttemptCost AttemptFromRow(const Query& row, int first) {
  v1::AttemptCost attempt;
  attempt.set_attempt(static_cast<int32_t>(row.Int(first + 0)));
  attempt.set_worker_id(row.Text(first + 1));
  attempt.set_state(row.Text(first + 2));
  attempt.set_gpus(static_cast<int32_t>(row.Int(first + 3)));
  attempt.set_price_per_gpu_hour(row.Double(first + 4));
  attempt.set_spot(row.Int(first + 5) != 0);
  attempt.set_seconds(row.Double(first + 6));
  attempt.set_gpu_hours(row.Double(first + 7));
  attempt.set_usd(row.Double(first + 8));
  SetTimestamp(FromMicrosColumn(row.Int(first + 9)), *attempt.mutable_start_time());
  SetOptionalTimestamp(row, first + 10, attempt, &v1::AttemptCost::mutable_end_time);
  attempt.set_on_demand_price_per_gpu_hour(row.Double(first + 11));
  attempt.set_wasted_seconds(row.Double(first + 12));
  const AttemptPricing pricing{attempt.price_per_gpu_hour(), attempt.gpus(), attempt.spot()};
  attempt.set_wasted_usd(AttemptCostUsd(pricing, absl::Seconds(attempt.wasted_seconds())));
  attempt.set_scoring_seconds(row.Double(first + 13));
  attempt.set_scoring_usd(AttemptCostUsd(pricing, absl::Seconds(attempt.scoring_seconds())));
  return attempt;
}

v1::Worker WorkerFromInfo(const std::string& id, const v1::WorkerInfo& info,
                          v1::Worker::State state) {
  v1::Worker worker;
  worker.set_id(id);
  worker.set_hostname(info.hostname());
  worker.set_accelerator(info.accelerator());
  worker.set_gpus(info.gpus());
  worker.set_memory_bytes(info.memory_bytes());
  worker.set_price_per_gpu_hour(info.price_per_gpu_hour());
  worker.set_spot(info.spot());
  *worker.mutable_labels() = info.labels();
  worker.set_state(state);
  return worker;
}

absl::StatusOr<v1::Worker> WorkerFromRow(const Query& row, int first, v1::WorkerInfo* info_out) {
  v1::WorkerInfo info;
  TL_RETURN_IF_ERROR(
      ParseStoredMessage(row.Text(first + 1), absl::StrCat("worker ", row.Text(first + 0)), info));
  auto state = static_cast<v1::Worker::State>(row.Int(first + 2));
  const std::optional<int64_t> running_job = row.OptionalInt(first + 5);
  if (running_job.has_value() && state == v1::Worker::IDLE) state = v1::Worker::BUSY;
  v1::Worker worker = WorkerFromInfo(row.Text(first + 0), info, state);
  if (running_job.has_value()) worker.set_job_id(absl::StrCat(*running_job));
  SetTimestamp(FromMicrosColumn(row.Int(first + 3)), *worker.mutable_register_time());
  SetTimestamp(FromMicrosColumn(row.Int(first + 4)), *worker.mutable_last_heartbeat_time());
  if (info_out != nullptr) *info_out = std::move(info);
  return worker;
}

std::string GangColumn(const std::vector<std::pair<std::string, int>>& members) {
  return absl::StrJoin(members, ",", [](std::string* out, const std::pair<std::string, int>& m) {
    absl::StrAppend(out, m.first, ":", m.second);
  });
}

absl::StatusOr<std::vector<std::pair<std::string, int>>> GangFromColumn(const std::string& text) {
  std::vector<std::pair<std::string, int>> members;
  if (text.empty()) return members;
  for (absl::string_view entry : absl::StrSplit(text, ',')) {
    const std::vector<absl::string_view> parts = absl::StrSplit(entry, ':');
    int gpus = 0;
    if (parts.size() != 2 || parts[0].empty() || !absl::SimpleAtoi(parts[1], &gpus) || gpus <= 0) {
      return absl::DataLossError(absl::StrCat("stored gang \"", text, "\" is damaged"));
    }
    members.emplace_back(std::string(parts[0]), gpus);
  }
  return members;
}

}  // namespace tuneledger
