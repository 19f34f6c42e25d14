// What a base model's own folder says about where it comes from and its licence, read by the
// server at submit for the cost card (cost_card.h) and CostReport.base_model:
//   1. <model>/README.md front matter (the Hugging Face model card: YAML between the first two
//      "---" lines): `license` (with `license_name` when it is "other"), and `base_model` or
//      `model_name` for the source; a list value takes its items joined by ", ".
//   2. else a licence file: LICENSE, LICENSE.txt, LICENSE.md, LICENCE: its first non-blank line.
//   3. else license "unknown"; the source is then the folder's name.
// Only the first 64 KiB of each file are read; values are cut to 256 bytes. A folder that
// cannot be read gives "unknown": the card says so rather than failing the submit.
//
// Thread safety: a pure function of the files.
#ifndef TUNELEDGER_SERVER_CORE_MODEL_CARD_H_
#define TUNELEDGER_SERVER_CORE_MODEL_CARD_H_

#include <string>

#include "tuneledger/v1/jobs.pb.h"

namespace tuneledger {

v1::BaseModel ReadBaseModel(const std::string& model_dir);

}  // namespace tuneledger

#endif  // TUNELEDGER_SERVER_CORE_MODEL_CARD_H_
