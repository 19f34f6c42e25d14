// Building the JobSpec of `tunectl submit` from its flags and an optional --spec JSON file.
//
// Order: the --spec file (proto JSON mapping, unknown fields rejected), whose relative paths
// are resolved against the file's folder; then every flag given on the command line, which
// overrides the file's field (lists such as --target-modules replace it; --label adds or
// replaces one key; --inherited-cost appends); relative --model/--train/--valid paths are
// resolved against the current directory, because the server and the workers resolve paths in
// their own working directories.
//
// The client checks only what it must to build the message (numbers parse, enums are known);
// ranges, paths and module names are the server's ValidateJobSpec()'s job, so that there is
// one validation and its errors name the proto field.
// Thread safety: free functions without shared state.
#ifndef TUNELEDGER_CLIENT_SPEC_BUILDER_H_
#define TUNELEDGER_CLIENT_SPEC_BUILDER_H_

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/cli_args.h"
#include "tuneledger/v1/jobs.pb.h"

namespace tuneledger::client {

// Parses a JobSpec from JSON text. INVALID_ARGUMENT (with the parser's message) when the text
// is not a JobSpec.
absl::StatusOr<tuneledger::v1::JobSpec> ParseJobSpecJson(absl::string_view json);

// Resolves a path against base_dir unless it is empty or already absolute; the result is
// lexically normalised ("a/./b/../c" -> "a/c").
std::string AbsolutePath(const std::string& path, const std::string& base_dir);

// Every --label KEY=VALUE given, a later value of a key replacing an earlier one.
// INVALID_ARGUMENT naming --label when one has no '=' or an empty key (a usage error).
absl::StatusOr<std::map<std::string, std::string>> ParseLabelFlags(const FlagValues& flags);

// Applies the submit flags over `spec`. INVALID_ARGUMENT naming the flag when a value does not
// parse (a usage error).
absl::Status ApplySubmitFlags(const FlagValues& flags, const std::string& cwd,
                              tuneledger::v1::JobSpec& spec);

// The whole of submit's spec: reads --spec, then applies the flags. INVALID_ARGUMENT (a usage
// error) when the --spec file cannot be read or is not a JobSpec, or a flag does not parse.
absl::StatusOr<tuneledger::v1::JobSpec> BuildJobSpec(const FlagValues& flags,
                                                     const std::string& cwd);

// INVALID_ARGUMENT naming --model and/or --train when the spec has no model or training data:
// the two inputs `tunectl submit` cannot do without (its usage line), checked before the
// server is asked so that a bare `tunectl submit` is a usage error.
absl::Status CheckSubmitHasInputs(const tuneledger::v1::JobSpec& spec);

}  // namespace tuneledger::client

#endif  // TUNELEDGER_CLIENT_SPEC_BUILDER_H_
