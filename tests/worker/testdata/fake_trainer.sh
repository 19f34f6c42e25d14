#!/bin/bash
# A stand-in for tuneledger-train that speaks worker/trainer/PROGRESS_PROTOCOL.md, for testing
# the worker agent without LibTorch. The job spec's "name" picks the behaviour:
#   succeed      3 progress lines (falling loss), a checkpoint, an adapter, done, exit 0
#   silent       prints nothing for 1.5 s, then succeeds
#   fail         an error line and exit 1 (like a corrupt model file)
#   crash        one progress line, then dies of SIGSEGV without an error line
#   preemptible  progress, then waits; SIGTERM -> checkpoint step-7, stopped line, exit 75
#   stubborn     progress, then ignores SIGTERM (only SIGKILL stops it)
#   garbage      malformed lines first, then succeeds
#   early-stop   as succeed, but its done line says early_stopped (training.early_stop)
#   diverge      progress, then an error line with reason loss_diverged and exit 1
# It records its pid, arguments, CUDA_VISIBLE_DEVICES and whether it was handed a worker token
# (TUNELEDGER_WORKER_TOKEN) in <out>/fake-trainer.txt.
set -u
spec="" out="" resume=""
while [ $# -gt 0 ]; do
  case "$1" in
    --spec) spec=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --resume-from) resume=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
mode=$(sed -n 's/^ *"name": *"\([^"]*\)".*/\1/p' "$spec")
{
  echo "pid=$$"
  echo "resume=$resume"
  echo "cuda=${CUDA_VISIBLE_DEVICES-unset}"
  echo "worker_token=${TUNELEDGER_WORKER_TOKEN-unset}"
} > "$out/fake-trainer.txt"
echo "fake trainer: mode $mode" >&2

progress() {  # step loss
  echo "{\"type\":\"progress\",\"step\":$1,\"total_steps\":3,\"epoch\":0.5,\"loss\":$2,\"lr\":0.0002,\"tokens\":$(($1 * 100)),\"tokens_per_sec\":1000.0,\"elapsed_s\":0.1}"
}
succeed() {  # [extra fields of the done line]
  echo '{"type":"started","total_steps":3,"start_step":0,"trainable_params":10,"total_params":100,"device":"cpu","precision":"fp32"}'
  progress 1 3.0
  progress 2 2.5
  mkdir -p "$out/checkpoints/step-2"
  echo "{\"type\":\"checkpoint\",\"step\":2,\"path\":\"$out/checkpoints/step-2\"}"
  echo '{"type":"eval","step":2,"eval_loss":2.7}'
  progress 3 2.0
  mkdir -p "$out/adapter"
  echo "{\"type\":\"done\",\"step\":3,\"adapter_dir\":\"$out/adapter\",\"train_loss\":2.0,\"eval_loss\":2.7${1:-}}"
  exit 0
}
wait_forever() {
  while :; do sleep 0.05 & wait $!; done
}

case "$mode" in
  succeed) succeed ;;
  silent) sleep 1.5; succeed ;;
  fail)
    echo "loading model" >&2
    echo '{"type":"error","message":"model.safetensors: header length 999999 exceeds file size 12"}'
    exit 1 ;;
  crash)
    progress 1 3.0
    echo "about to crash" >&2
    kill -SEGV $$ ;;
  preemptible)
    trap 'mkdir -p "$out/checkpoints/step-7"; echo "{\"type\":\"stopped\",\"step\":7,\"checkpoint\":\"$out/checkpoints/step-7\"}"; exit 75' TERM
    progress 1 3.0
    wait_forever ;;
  stubborn)
    trap '' TERM
    progress 1 3.0
    wait_forever ;;
  early-stop) succeed ',"early_stopped":true,"best_step":2' ;;
  diverge)
    progress 1 3.0
    echo '{"type":"error","message":"loss diverged at step 2: the mean loss of the last 10 steps is 9.0, above 2 x its lowest 3.0","reason":"loss_diverged"}'
    exit 1 ;;
  garbage)
    echo 'this is not json'
    echo '{"type":"progress","loss":1.0}'
    echo '{"type":"progress","step":"three"}'
    echo '{"type":"from-the-future","x":1}'
    succeed ;;
  *) echo "{\"type\":\"error\",\"message\":\"fake trainer: unknown mode $mode\"}"; exit 1 ;;
esac
