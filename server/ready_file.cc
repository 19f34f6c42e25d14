#include "server/ready_file.h"

#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace tuneledger {

absl::Status WriteReadyFile(const std::string& path, const ReadyAddresses& addresses, int pid) {
  // The addresses are HOST:PORT built by the server (no quotes or backslashes to escape).
  const std::string json =
      absl::StrCat("{\"grpc\":\"", addresses.grpc, "\",\"worker\":\"", addresses.worker,
                   "\",\"metrics\":\"", addresses.metrics, "\",\"pid\":", pid, "}\n");
  const std::string temporary = absl::StrCat(path, ".tmp.", pid);
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << json;
    out.flush();
    if (!out) {
      return absl::UnavailableError(
          absl::StrCat("cannot write the ready file \"", temporary, "\""));
    }
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    std::remove(temporary.c_str());
    return absl::UnavailableError(
        absl::StrCat("cannot rename \"", temporary, "\" to the ready file \"", path, "\""));
  }
  return absl::OkStatus();
}

}  // namespace tuneledger
