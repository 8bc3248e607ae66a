# Sourced by the serving benchmarks: a project in $1 whose pipeline
# registers the harness's Iris model ($SHARED/iris_logreg.onnx) as
# iris@production with its signature, run once with the ferry binary $2.
iris_project() { # DIR FERRY
  mkdir -p "$1"
  cp "$SHARED/iris_logreg.onnx" "$1/model.onnx"
  cat > "$1/ferry.yaml" <<'YAML'
name: bench
stages:
  model:
    cmd: mkdir -p work && cp model.onnx work/model.onnx
    deps: [model.onnx]
    outs: [work/model.onnx]
register:
  model: iris
  artifact: work/model.onnx
  alias: production
  signature:
    inputs: [sepal_length, sepal_width, petal_length, petal_width]
YAML
  (cd "$1" && "$2" run >&2)
}
