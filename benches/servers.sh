# Sourced by the benchmarks that start servers: the processes they start
# (PIDS, ended on exit) and waiting for one to answer (WAIT_TRIES x 50 ms).
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM
wait_up() { for _ in $(seq "${WAIT_TRIES:-400}"); do curl -sf -o /dev/null "$1" && return 0; sleep 0.05; done; echo "no answer from $1" >&2; exit 1; }
