// The one-line job progress of `tunectl watch`:
//
//   job 7 RUNNING [#########...............] step 120/500 (24%) loss 2.3412 1.23k tok/s
//       $0.42/$5.00 ETA 3m12s                                       (one line on a terminal)
//
// Pure functions of the Job message, so widths and ETA are unit-tested without a terminal.
// Thread safety: free functions without shared state.
#ifndef TUNELEDGER_CLIENT_PROGRESS_BAR_H_
#define TUNELEDGER_CLIENT_PROGRESS_BAR_H_

#include <string>

#include "tuneledger/v1/jobs.pb.h"

namespace tuneledger::client {

// step / total_steps: the report's ratio, or computed when the report has none; 0 when unknown.
double ProgressRatio(const tuneledger::v1::Progress& progress);

// Seconds until the job's training finishes: the server's eta_seconds (from the step rate it
// measured), 0 when all steps are done, negative while unknown.
double EstimateEtaSeconds(const tuneledger::v1::Progress& progress);
// "3m12s", or "measuring" while the ETA is unknown.
std::string EtaText(const tuneledger::v1::Progress& progress);

// "[####......]" exactly `width` characters wide (width >= 3); ratio clamped to [0, 1].
std::string FormatBar(double ratio, size_t width);

struct ProgressLineOptions {
  size_t width = 0;       // the line never exceeds this many characters; 0 = no limit
  bool draw_bar = false;  // a bar when the job runs and its total is known (and room is left)
};

// The job's one-line summary. When `width` is too small, the least important parts are left
// out first (eval loss, tokens/s, loss, ETA), then the line is cut.
std::string FormatProgressLine(const tuneledger::v1::Job& job, const ProgressLineOptions& options);

}  // namespace tuneledger::client

#endif  // TUNELEDGER_CLIENT_PROGRESS_BAR_H_
