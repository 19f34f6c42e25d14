// Rendering of each command's result as a table (for people) or JSON (for programs).
//
// JSON uses the proto JSON mapping with the proto's own field names ("state": "QUEUED",
// "reason": "USER", "model_path": ...), and prints numbers, strings and bools at their default
// values too, so a script finds them; what is not set is left out rather than printed as a
// placeholder: an enum at its X_UNSPECIFIED zero ("reason" of a job that succeeded) and a zero
// Timestamp ("end_time" of a running job). One document per command.
//
// Tables write "-" for what is not set, and money in one format per column (value_format.h).
// Thread safety: free functions without shared state.
#ifndef TUNELEDGER_CLIENT_OUTPUT_RENDER_H_
#define TUNELEDGER_CLIENT_OUTPUT_RENDER_H_

#include <string>
#include <vector>

#include "client/cli_args.h"
#include "google/protobuf/message.h"
#include "tuneledger/v1/jobs.pb.h"

namespace tuneledger::client {

// One line of JSON (no trailing newline).
std::string ToJson(const google::protobuf::Message& message);

// What happened in one event, in words: "attempt 1 on worker w-3", "accrued $4.01 crossed 80%
// of the budget", "step 50 at /w/...". Empty when the event has nothing to add.
std::string DescribeEvent(const tuneledger::v1::JobEvent& event);
// "20:41:07 STARTED attempt 1 on worker w-3": the line `watch` prints for an event.
std::string EventLine(const tuneledger::v1::JobEvent& event);

// Every function returns the whole output, ending in a newline.
// Table: the id alone (ID=$(tunectl submit ...)); json: {"id", "deduplicated", "estimate"}.
std::string RenderSubmitted(const tuneledger::v1::SubmitJobResponse& response, OutputFormat format);
// The estimate recorded with a submitted job on one line: tokens, steps and its cheapest class.
std::string RenderSubmittedEstimate(const tuneledger::v1::JobEstimate& estimate);
std::string RenderEstimate(const tuneledger::v1::JobEstimate& estimate, OutputFormat format);
std::string RenderJobList(const std::vector<tuneledger::v1::Job>& jobs, OutputFormat format);
std::string RenderJob(const tuneledger::v1::Job& job, OutputFormat format);
std::string RenderCancelled(const tuneledger::v1::Job& job, OutputFormat format);
std::string RenderEvents(const std::vector<tuneledger::v1::JobEvent>& events, OutputFormat format);
std::string RenderProgressHistory(const tuneledger::v1::ProgressHistory& history,
                                  OutputFormat format);
std::string RenderCostReport(const tuneledger::v1::CostReport& report, OutputFormat format);
std::string RenderParetoFront(const tuneledger::v1::ParetoFront& front, OutputFormat format);
std::string RenderWorkers(const std::vector<tuneledger::v1::Worker>& workers, OutputFormat format);

}  // namespace tuneledger::client

#endif  // TUNELEDGER_CLIENT_OUTPUT_RENDER_H_
