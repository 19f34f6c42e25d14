#include "client/command_table.h"

namespace tuneledger::client {

const std::vector<FlagSpec>& GlobalFlagSpecs() {
  static const auto* const kFlags = new std::vector<FlagSpec>{
      {"server", "HOST:PORT",
       "tuneledger-server to talk to (default: $TUNELEDGER_SERVER, else 127.0.0.1:50051)"},
      {"token", "T",
       "bearer token sent as 'authorization: Bearer T' (default: $TUNELEDGER_TOKEN; none if "
       "unset)"},
      {"tls-ca", "FILE",
       "dial over TLS, trusting the CA certificates in FILE (PEM): for a server started with "
       "--tls-cert (default: $TUNELEDGER_TLS_CA; plaintext if unset)"},
      {"output", "table|json",
       "table: aligned columns for people (default); json: one JSON document per command with "
       "the proto field names (watch: one JSON object per line)"},
      {"timeout", "SECONDS", "deadline of each request (default 30; watch streams have none)"},
      {"help", "", "explain the commands, or the command given, and exit"},
  };
  return *kFlags;
}

namespace {

// The flags that build a JobSpec (spec_builder.h): submit's, and estimate's (the same spec).
std::vector<FlagSpec> SpecFlagSpecs() {
  return {
      {"model", "DIR", "Hugging Face model folder (config.json + model.safetensors)"},
      {"train", "FILE",
       "training data, JSONL ({\"text\"}, {\"prompt\",\"completion\"}, "
       "{\"messages\"} or {\"input_ids\"})"},
      {"valid", "FILE", "validation data, JSONL (enables eval loss)"},
      {"name", "N", "a name for the job (free text, up to 128 characters)"},
      {"spec", "FILE", "a JobSpec as JSON (proto JSON mapping); flags override its fields"},
      {"lora-r", "R", "LoRA rank [16]"},
      {"lora-alpha", "A", "LoRA alpha: the update is scaled by alpha/r [32]"},
      {"lora-dropout", "P", "dropout on the LoRA input, in [0, 1) [0.1]"},
      {"target-modules", "LIST",
       "comma-separated projections to adapt, of q_proj,k_proj,v_proj,o_proj,gate_proj,"
       "up_proj,down_proj [q_proj,v_proj]"},
      {"quantize-base", "none|nf4|nf4-dq|int8",
       "QLoRA: store the frozen q/k/v/o/gate/up/down projections quantized (nf4: 4-bit "
       "NormalFloat with an absmax per 64 values, about 1/8 of fp32; nf4-dq: the same with "
       "each absmax in 8 bits (double quantization), about 1/8 + 1/256; int8: one scale per row, "
       "about 1/4) and dequantize them in each GEMM; the adapter is for the unquantized base "
       "[none]"},
      {"epochs", "N", "passes over the training data (not with --max-steps) [1]"},
      {"max-steps", "N", "optimizer steps to run (not with --epochs)"},
      {"batch-size", "B", "sequences per micro-batch [8]"},
      {"grad-accum", "N", "micro-batches per optimizer step [1]"},
      {"lr", "LR", "AdamW peak learning rate [2e-4]"},
      {"warmup-steps", "N", "linear warmup steps [0]"},
      {"lr-schedule", "cosine|linear|constant", "learning-rate schedule after warmup [cosine]"},
      {"weight-decay", "X", "AdamW decoupled weight decay [0]"},
      {"max-grad-norm", "X", "gradient clipping by global norm, 0 = off [1]"},
      {"seq-len", "L", "max tokens per sequence; longer examples are truncated [256]"},
      {"seed", "S", "seed of init, dropout and shuffling [0]"},
      {"precision", "fp32|bf16|fp16",
       "compute precision [fp32 on CPU, bf16 on GPUs that support it]"},
      {"grad-checkpointing", "", "recompute each decoder layer in backward (less memory)"},
      {"checkpoint-every", "N", "steps between checkpoints [50]"},
      {"eval-every", "N", "steps between evaluations on --valid [50]"},
      {"early-stop-patience", "N",
       "end the job (SUCCEEDED, reason EARLY_STOPPED, the best evaluation's adapter) after N "
       "evaluations on --valid in a row without a better eval loss; 0 = never [0]"},
      {"early-stop-min-delta", "X",
       "what counts as better for --early-stop-patience: lower by more than X nats [0]"},
      {"divergence-factor", "F",
       "fail the job (reason LOSS_DIVERGED) once the mean loss of the last 10 steps exceeds F "
       "times its lowest; 0 = off [0]. A NaN loss always fails it so"},
      {"select-data", "entropy|loss",
       "before training, score every training example with the base model (mean predictive "
       "entropy, or loss, of its trained tokens) and train on the top --keep-fraction only; "
       "the scoring pass is billed as its own line [off]"},
      {"keep-fraction", "F", "fraction of the examples --select-data keeps, in (0, 1]"},
      {"budget-usd", "X", "budget cap in USD; none by default"},
      {"budget-thresholds", "LIST",
       "comma-separated fractions of the budget that record an event [0.5,0.8,1.0]"},
      {"budget-policy", "cancel|alert-only",
       "cancel: cancel the job at 100% of the budget [default]; alert-only: record only"},
      {"priority", "P", "higher runs first, -1000..1000 [0]"},
      {"gpus", "N", "GPUs per attempt [1]"},
      {"max-attempts", "N",
       "lost attempts (a worker vanished) before giving up; preemptions do not count [3]"},
      {"label", "KEY=VALUE", "attach a label (repeatable)", true},
      {"inherited-cost", "KIND=USD:SOURCE",
       "declare a cost the model inherits, KIND one of pretraining, data, labour, other, "
       "e.g. pretraining=1200000:Llama 2 paper (repeatable)",
       true},
      {"request-id", "ID",
       "idempotency key: a second submit with the same id returns the first job"},
  };
}

std::vector<FlagSpec> With(std::vector<FlagSpec> flags, std::vector<FlagSpec> more) {
  flags.insert(flags.end(), more.begin(), more.end());
  return flags;
}

}  // namespace

const std::vector<CommandSpec>& CommandSpecs() {
  static const auto* const kCommands = new std::vector<CommandSpec>{
      {"submit", "", "submit a LoRA fine-tuning job; prints its id",
       "Submits a job built from the flags below (and from --spec FILE, whose fields the flags "
       "override) and prints the new job's id (json: {\"id\": ...}). Relative paths in --model, "
       "--train and --valid are made absolute against the current directory; relative paths "
       "inside a --spec file against that file's folder. Without --model and --train (from the "
       "flags or the --spec file), or with a --spec file that cannot be read, tunectl exits 2 "
       "before asking the server. The server validates every field and answers "
       "INVALID_ARGUMENT naming each bad one; nothing is stored then. Unset fields take "
       "the server's defaults (shown in brackets). The server records a pre-flight estimate "
       "with the job (see 'tunectl estimate'): its cheapest class is printed on one line to "
       "stderr after the id, so that ID=$(tunectl submit ...) still gets the id alone (json: "
       "the whole estimate as \"estimate\"). With --dry-run nothing is submitted and the "
       "estimate is printed as 'tunectl estimate' prints it.",
       With(SpecFlagSpecs(),
            {
                {"dry-run", "",
                 "submit nothing: print what the job would cost, as 'tunectl estimate' does"},
                {"wait", "", "after submitting, watch the job (exit code as for watch)"},
            })},
      {"estimate", "", "what a job would cost, before submitting it",
       "Asks the server what the job built from the flags below (the same as submit's) would "
       "train and cost, without submitting it: the tokens to train (counted with the model's "
       "tokenizer from the data when the server can read it, else from the file size, with the "
       "assumption stated), the optimizer steps, and for each class of registered workers "
       "(accelerator, price, spot or on-demand) the tokens per second, GPU-hours and USD, "
       "cheapest first. A class's rate comes from past jobs of the same model shape that "
       "succeeded on that accelerator, or on a cold start from a FLOPs-based guess (it says "
       "which). The spec is validated as submit validates it (INVALID_ARGUMENT naming each bad "
       "field); nothing is stored. json: the JobEstimate.",
       SpecFlagSpecs()},
      {"list",
       "",
       "list jobs in dispatch order",
       "Lists jobs: QUEUED first in the order they will be dispatched (priority, then submit "
       "time), then RUNNING, then finished jobs newest first. Follows every page (json: "
       "{\"jobs\": [...], \"next_page_token\": \"\"}).",
       {
           {"state", "STATE",
            "only jobs in this state: queued, running, succeeded, failed, cancelled (repeatable, "
            "or comma-separated)",
            true},
           {"page-size", "N", "jobs per request while paging [server default]"},
       }},
      {"get", "ID", "show one job", "Shows a job: its state, spec, progress and cost.", {}},
      {"watch",
       "ID",
       "follow a job live until it ends",
       "Follows a job until it reaches a final state: on a terminal a one-line progress bar "
       "(step/total, loss, tokens/s, cost/budget, ETA) redrawn in place, with the job's events "
       "printed above it; when stdout is not a terminal, plain lines; with --output json one "
       "JSON object per event and per change of state or step ({\"job\": ..., \"event\": "
       "...}). Reconnects if the stream breaks. Exits 0 only when the job SUCCEEDED (3 FAILED, 4 "
       "CANCELLED).",
       {
           {"reconnect-timeout", "SECONDS",
            "give up when the server stays unreachable this long [120]"},
       }},
      {"cancel",
       "ID",
       "cancel a job (reason USER)",
       "Cancels a queued or running job; it ends CANCELLED with reason USER. Cancelling a job "
       "that already ended is FAILED_PRECONDITION.",
       {
           {"message", "TEXT", "a note recorded in the job's CANCELLED event"},
       }},
      {"events", "ID", "show a job's event log", "Shows every event of a job, oldest first.", {}},
      {"history",
       "ID",
       "show a job's progress history",
       "Shows the job's progress over its whole life, oldest first (loss, eval loss, learning "
       "rate, tokens/s), downsampled by the server to a bounded number of points; "
       "--output json gives the points for plotting.",
       {}},
      {"cost",
       "ID",
       "show a job's cost report",
       "Shows the whole bill of a job: compute per attempt (GPU-hours, price, spot or "
       "on-demand, data-selection scoring, preemption waste), the inherited costs declared at "
       "submit with their sources, the totals, the share of compute in the total, the budget "
       "and any overshoot, the estimate recorded at submit against the compute billed (and its "
       "error once the job has ended), and the base model's source and licence.",
       {
           {"card", "",
            "print the cost card instead: the same bill as Markdown, as written beside the "
            "adapter (COST.md)"},
       }},
      {"pareto",
       "",
       "cost against quality across finished jobs",
       "Lists your finished jobs that reported an eval loss, cheapest first, with their last "
       "eval loss and total cost (compute + declared inherited costs, as in 'tunectl cost'), and "
       "marks with '*' the Pareto-optimal ones: jobs that succeeded and that no other succeeded "
       "job beats on both cost and loss. Read from the server's store, so it covers jobs long "
       "gone from the metrics (the newest 10,000 finished jobs).",
       {
           {"label", "KEY=VALUE", "only jobs with this label (repeatable: every one must match)",
            true},
       }},
      {"workers", "", "list the workers", "Lists the registered workers and what they run.", {}},
      {"help",
       "[COMMAND]",
       "explain a command (tunectl help COMMAND)",
       "Prints the help of the command given, or the list of commands.",
       {}},
  };
  return *kCommands;
}

const CommandSpec* FindCommand(absl::string_view name) {
  for (const CommandSpec& command : CommandSpecs()) {
    if (command.name == name) return &command;
  }
  return nullptr;
}

const FlagSpec* FindFlag(const std::vector<FlagSpec>& flags, absl::string_view name) {
  for (const FlagSpec& flag : flags) {
    if (flag.name == name) return &flag;
  }
  return nullptr;
}

}  // namespace tuneledger::client
