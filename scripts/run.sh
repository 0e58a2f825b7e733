#!/usr/bin/env bash
# `make run`: build the demo store if MSMV_HOME has none, start the engine service in the background
# (when available) and the dashboard in the foreground; Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
export MSMV_HOME="${MSMV_HOME:-$PWD/data}"
mkdir -p "$MSMV_HOME"

if ! $VENV/bin/msmv status --quiet >/dev/null 2>&1; then
  echo "No MSMV store in $MSMV_HOME yet: building the simulated demo cohort (about a minute)..."
  $VENV/bin/msmv demo
fi

pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

if $VENV/bin/msmv engine --help >/dev/null 2>&1; then
  echo "Starting the engine service in the background (log: $MSMV_HOME/engine.log)"
  $VENV/bin/msmv engine >>"$MSMV_HOME/engine.log" 2>&1 &
  pids+=($!)
fi

# Address and port come from .streamlit/config.toml (or STREAMLIT_SERVER_*), which streamlit applies itself.
read -r ADDRESS PORT <<<"$($VENV/bin/msmv settings server.address server.port | tr '\n' ' ')"
echo "Dashboard: http://$ADDRESS:$PORT  (Ctrl-C stops the dashboard and the engine)"
$VENV/bin/streamlit run dashboard/app.py &
pids+=($!)
wait "${pids[-1]}"
