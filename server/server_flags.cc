#include "server/server_flags.h"

#include <cmath>
#include <functional>
#include <map>
#include <optional>
#include <string_view>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/command_line.h"

namespace tuneledger {
namespace {

// The problem with a flag's value; base/command_line.h puts "--flag: " in front.
absl::Status BadValue(const std::string& flag, const std::string& value, const std::string& rule) {
  return absl::InvalidArgumentError(absl::StrCat(rule, ", got \"", value, "\""));
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

absl::Status NonEmptyFile(const std::string& flag, const std::string& value, std::string& out) {
  if (value.empty()) return BadValue(flag, value, "must name a file");
  out = value;
  return absl::OkStatus();
}

using ValueParser = std::function<absl::Status(ServerFlags&, const std::string&)>;

const std::map<std::string, ValueParser>& ValueFlags() {
  static const auto* flags = new std::map<std::string, ValueParser>{
      {"listen",
       [](ServerFlags& f, const std::string& v) { return ParseAddress("listen", v, f.listen); }},
      {"worker-listen",
       [](ServerFlags& f, const std::string& v) {
         return ParseAddress("worker-listen", v, f.worker_listen);
       }},
      {"max-price-per-gpu-hour",
       [](ServerFlags& f, const std::string& v) {
         if (!absl::SimpleAtod(v, &f.max_price_per_gpu_hour) ||
             !std::isfinite(f.max_price_per_gpu_hour) || f.max_price_per_gpu_hour < 0) {
           return BadValue("max-price-per-gpu-hour", v, "must be a number of USD >= 0");
         }
         return absl::OkStatus();
       }},
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
      {"local-rendezvous-port-base",
       [](ServerFlags& f, const std::string& v) {
         int port = 0;
         if (!absl::SimpleAtoi(v, &port) || port < 1024 || port > 60000) {
           return BadValue("local-rendezvous-port-base", v, "must be a port in [1024, 60000]");
         }
         f.local_rendezvous_port_base = port;
         return absl::OkStatus();
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
      {"data-root",
       [](ServerFlags& f, const std::string& v) {
         if (v.empty()) return BadValue("data-root", v, "must name a folder ([TENANT=]DIR)");
         f.data_roots.push_back(v);
         return absl::OkStatus();
       }},
      {"tokens-file",
       [](ServerFlags& f, const std::string& v) {
         f.tokens_file = v;
         return absl::OkStatus();
       }},
      {"tls-cert", [](ServerFlags& f,
                      const std::string& v) { return NonEmptyFile("tls-cert", v, f.tls_cert); }},
      {"tls-key",
       [](ServerFlags& f, const std::string& v) { return NonEmptyFile("tls-key", v, f.tls_key); }},
      {"tls-client-ca",
       [](ServerFlags& f, const std::string& v) {
         return NonEmptyFile("tls-client-ca", v, f.tls_client_ca);
       }},
      {"metrics-token-file",
       [](ServerFlags& f, const std::string& v) {
         return NonEmptyFile("metrics-token-file", v, f.metrics_token_file);
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
  CommandLineHandlers handlers;
  handlers.kind = [](std::string_view name) -> std::optional<FlagKind> {
    if (name == "help" || name == "spot") return FlagKind::kSwitch;
    if (ValueFlags().count(std::string(name)) > 0) return FlagKind::kValue;
    return std::nullopt;
  };
  handlers.apply = [&flags](std::string_view name, const std::string& value) -> std::string {
    if (name == "help" || name == "spot") {
      (name == "help" ? flags.help : flags.spot) = value == "true";
      return "";
    }
    const absl::Status status = ValueFlags().at(std::string(name))(flags, value);
    return status.ok() ? "" : std::string(status.message());
  };
  if (const std::string problem = ParseCommandLine(args, handlers); !problem.empty()) {
    return absl::InvalidArgumentError(problem);
  }
  if (!flags.help && flags.data_roots.empty()) {
    return absl::InvalidArgumentError(
        "--data-root is required: the folders whose models and data jobs may name (repeat it; "
        "TENANT=DIR gives one tenant a root of its own)");
  }
  if (flags.tls_cert.empty() != flags.tls_key.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        flags.tls_cert.empty() ? "--tls-key needs --tls-cert" : "--tls-cert needs --tls-key",
        ": give the certificate and its private key together"));
  }
  if (!flags.tls_client_ca.empty() && flags.tls_cert.empty()) {
    return absl::InvalidArgumentError(
        "--tls-client-ca needs --tls-cert and --tls-key: client certificates are checked in "
        "the TLS handshake");
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

  --listen HOST:PORT            the public gRPC listener: JobService (tunectl), health,
                                reflection [127.0.0.1:50051]; port 0 picks a free port
  --worker-listen HOST:PORT     WorkerService, for workers only: they authenticate with a
                                worker token [127.0.0.1:0, so only local workers reach it;
                                give 0.0.0.0:PORT for workers on other machines]
  --metrics-listen HOST:PORT    Prometheus /metrics [127.0.0.1:9464]; port 0 picks one
  --db FILE                     SQLite database (created if missing) [tuneledger.db]
  --local-workers N             run N tuneledger-worker agents as children [0]
  --local-rendezvous-port-base PORT
                                local worker i starts data-parallel rank 0s on
                                127.0.0.1:PORT+i [29500]
  --work-dir DIR                their shared work folder (checkpoints, adapters)
                                [tuneledger-work]
  --price-per-gpu-hour USD      what local workers declare per GPU-hour [0]
  --max-price-per-gpu-hour USD  a worker declaring more is refused at RegisterWorker [1000]
  --spot                        local workers declare spot (preemptible) capacity
  --worker-binary PATH          tuneledger-worker to run [next to this executable]
  --ready-file FILE             once every listener is up, write (atomically)
                                {"grpc":"HOST:PORT","worker":"HOST:PORT","metrics":"HOST:PORT",
                                 "pid":N}
  --data-root [TENANT=]DIR      a folder whose models and data jobs may name (required;
                                repeat it). A spec's model_path, train_path and valid_path must
                                resolve, links followed, inside one of the submitting tenant's
                                roots; relative paths are relative to a root. Local workers
                                get the same roots.
  --tokens-file FILE            lines "TOKEN NAME [tenant|worker]": with it, JobService calls
                                need metadata "authorization: Bearer TOKEN" of a tenant line
                                [off: every caller is tenant "default"]. WorkerService calls
                                always need a worker line's token (local workers get one the
                                server makes at start)
  --tls-cert FILE               serve both gRPC listeners over TLS with this PEM certificate
                                (chain) [off: plaintext]; needs --tls-key. Clients then dial
                                with --tls-ca (tunectl, tuneledger-worker); local workers reach
                                the server on a private Unix socket instead
  --tls-key FILE                the PEM private key of --tls-cert (unencrypted)
  --tls-client-ca FILE          the worker listener also requires a client certificate issued
                                by a CA in FILE (PEM), on top of the worker token
  --metrics-token-file FILE     /metrics wants HTTP Basic auth with password TOKEN (any user
                                name), TOKEN the first line of FILE; others get 401 [off: bind
                                --metrics-listen to loopback to keep it private]
  --heartbeat-timeout DURATION  a worker silent this long is LOST and its job requeued [15s]
  --report-interval DURATION    how often workers report cost; budgets are enforced within
                                one interval [1s]
  --metrics-job-retention DURATION
                                how long a finished job's series stay on /metrics [10m]
  --max-rpc-threads N           gRPC thread cap per listener; each long poll and watch
                                stream holds one (workers' progress streams do not) [256]
  --help                        this text

SIGINT or SIGTERM shuts down cleanly (local workers first, so their attempts end PREEMPTED
with a checkpoint) and exits 0.
)";
}

}  // namespace tuneledger
