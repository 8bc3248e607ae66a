# Sourced by the serving benchmarks: serve_limit WORK builds the harness's
# fixed-answer server (the serving ceiling) and sets LIMIT to its binary.
# The harness's folder is read-only: the server is built from a copy in WORK.
serve_limit() { # WORK
  rm -rf "$1/limit"
  cp -r "$SHARED/limit" "$1/limit"
  CARGO_TARGET_DIR="$ROOT/target/ceiling" cargo build -q --release --manifest-path "$1/limit/Cargo.toml" >&2
  LIMIT="$ROOT/target/ceiling/release/serve-limit"
}
