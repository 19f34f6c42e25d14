#!/bin/bash
# Stands in for tuneledger-worker in the server lifecycle test: records its command line, then
# waits for SIGTERM (the server stopping its local workers) and records that too.
# FAKE_WORKER_LOG names the file (set by the test in the server's environment).
log=${FAKE_WORKER_LOG:?}
trap 'echo "stopped" >> "$log"; exit 0' TERM
echo "args $*" >> "$log"
token=${TUNELEDGER_WORKER_TOKEN-unset}
if [[ $token =~ ^[0-9a-f]{64}$ ]]; then token=64-hex-digits; fi
echo "token=$token" >> "$log"
while true; do sleep 0.05; done
