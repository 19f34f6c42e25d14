#include "server/server_flags.h"

#include <cmath>
#include <functional>
#include <map>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tuneledger {
namespace {

absl::Status BadValue(const std::string& flag, const std::string& value, const std::string& rule) {
  return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", rule, ", got \"", value, "\""));
}

absl::Status ParseDurationValue(const std::string& flag, const std::string& value,
                                absl::Duration& out) {
  double seconds = 0;
  if (absl::SimpleAtod(value, &seconds)) {
    out = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(value, &out)) {
    return BadValue(flag, value, "must be a duration such as 15s, 500ms or 10m");
  }
  if (out <= absl::ZeroDuration()) return BadValue(flag, value, "must be > 0");
  return absl::OkStatus();
}

absl::Status ParseCount(const std::string& flag, const std::string& value, int min, int& out) {
  if (!absl::SimpleAtoi(value, &out) || out < min) {
    return BadValue(flag, value, absl::StrCat("must be an integer >= ", min));
  }
  return absl::OkStatus();
}

absl::Status ParseAddress(const std::string& flag, const std::string& value, std::string& out) {
  const size_t colon = value.rfind(':');
  int port = 0;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(value.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return BadValue(flag, value, "must be HOST:PORT (port 0 picks a free one)");
  }
  out = value;
  return absl::OkStatus();
}

using ValueParser = std::function<absl::Status(ServerFlags&, const std::string&)>;

const std::map<std::string, ValueParser>& ValueFlags() {
  static const auto* flags = new std::map<std::string, ValueParser>{
      {"listen",
       [](ServerFlags& f, const std::string& v) { return ParseAddress("listen", v, f.listen); }},
      {"metrics-listen",
       [](ServerFlags& f, const std::string& v) {
         return ParseAddress("metrics-listen", v, f.metrics_listen);
       }},
      {"db",
       [](ServerFlags& f, const std::string& v) {
         if (v.empty()) return BadValue("db", v, "must name a file");
         f.db = v;
         return absl::OkStatus();
       }},
      {"local-workers",
       [](ServerFlags& f, const std::string& v) {
         return ParseCount("local-workers", v, 0, f.local_workers);
       }},
      {"work-dir",
       [](ServerFlags& f, const std::string& v) {
         if (v.empty()) return BadValue("work-dir", v, "must name a folder");
         f.work_dir = v;
         return absl::OkStatus();
       }},
      {"price-per-gpu-hour",
       [](ServerFlags& f, const std::string& v) {
         if (!absl::SimpleAtod(v, &f.price_per_gpu_hour) || !std::isfinite(f.price_per_gpu_hour) ||
             f.price_per_gpu_hour < 0) {
           return BadValue("price-per-gpu-hour", v, "must be a number of USD >= 0");
         }
         return absl::OkStatus();
       }},
      {"worker-binary",
       [](ServerFlags& f, const std::string& v) {
         f.worker_binary = v;
         return absl::OkStatus();
       }},
      {"ready-file",
       [](ServerFlags& f, const std::string& v) {
         f.ready_file = v;
         return absl::OkStatus();
       }},
      {"tokens-file",
       [](ServerFlags& f, const std::string& v) {
         f.tokens_file = v;
         return absl::OkStatus();
       }},
      {"heartbeat-timeout",
       [](ServerFlags& f, const std::string& v) {
         return ParseDurationValue("heartbeat-timeout", v, f.heartbeat_timeout);
       }},
      {"report-interval",
       [](ServerFlags& f, const std::string& v) {
         return ParseDurationValue("report-interval", v, f.report_interval);
       }},
      {"metrics-job-retention",
       [](ServerFlags& f, const std::string& v) {
         return ParseDurationValue("metrics-job-retention", v, f.metrics_job_retention);
       }},
      {"max-rpc-threads",
       [](ServerFlags& f, const std::string& v) {
         return ParseCount("max-rpc-threads", v, 8, f.max_rpc_threads);
       }},
  };
  return *flags;
}

}  // namespace

absl::StatusOr<ServerFlags> ParseServerFlags(const std::vector<std::string>& args) {
  ServerFlags flags;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (!absl::StartsWith(arg, "--")) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument \"", arg, "\" (see --help)"));
    }
    std::string name = arg.substr(2);
    std::optional<std::string> value;
    if (const size_t equals = name.find('='); equals != std::string::npos) {
      value = name.substr(equals + 1);
      name = name.substr(0, equals);
    }
    if (name == "help" || name == "spot") {
      if (value.has_value()) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " takes no value"));
      }
      (name == "help" ? flags.help : flags.spot) = true;
      continue;
    }
    auto parser = ValueFlags().find(name);
    if (parser == ValueFlags().end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name, " (see --help)"));
    }
    if (!value.has_value()) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      }
      value = args[++i];
    }
    if (absl::Status status = parser->second(flags, *value); !status.ok()) return status;
  }
  if (flags.heartbeat_timeout <= flags.report_interval) {
    return absl::InvalidArgumentError(
        absl::StrCat("--heartbeat-timeout (", absl::FormatDuration(flags.heartbeat_timeout),
                     ") must be longer than --report-interval (",
                     absl::FormatDuration(flags.report_interval), ")"));
  }
  return flags;
}

std::string HostOf(const std::string& host_port) {
  return host_port.substr(0, host_port.rfind(':'));
}

std::string ServerUsage() {
  return R"(tuneledger-server: queues LoRA fine-tuning jobs in SQLite, dispatches them to workers,
accounts their cost live and exports Prometheus metrics.

Usage: tuneledger-server [flags]

  --listen HOST:PORT            gRPC (JobService, WorkerService, health, reflection)
                                [127.0.0.1:50051]; port 0 picks a free port
  --metrics-listen HOST:PORT    Prometheus /metrics [127.0.0.1:9464]; port 0 picks one
  --db FILE                     SQLite database (created if missing) [tuneledger.db]
  --local-workers N             run N tuneledger-worker agents as children [0]
  --work-dir DIR                their shared work folder (checkpoints, adapters)
                                [tuneledger-work]
  --price-per-gpu-hour USD      what local workers declare per GPU-hour [0]
  --spot                        local workers declare spot (preemptible) capacity
  --worker-binary PATH          tuneledger-worker to run [next to this executable]
  --ready-file FILE             once both listeners are up, write
                                {"grpc":"HOST:PORT","metrics":"HOST:PORT","pid":N} (atomically)
  --tokens-file FILE            lines "TOKEN TENANT"; JobService calls then need metadata
                                "authorization: Bearer TOKEN" [off: every caller is "default"]
  --heartbeat-timeout DURATION  a worker silent this long is LOST and its job requeued [15s]
  --report-interval DURATION    how often workers report cost; budgets are enforced within
                                one interval [1s]
  --metrics-job-retention DURATION
                                how long a finished job's series stay on /metrics [10m]
  --max-rpc-threads N           gRPC thread cap; each long poll and stream holds one [256]
  --help                        this text

SIGINT or SIGTERM shuts down cleanly (local workers first, so their attempts end PREEMPTED
with a checkpoint) and exits 0.
)";
}

}  // namespace tuneledger
