# Sourced by the serving benchmarks.
#
# model_project DIR FERRY ONNX NAME INPUT...: a project in DIR whose pipeline
# registers the ONNX file as NAME@production with the signature INPUT...,
# run once with the ferry binary FERRY.
model_project() {
  local dir="$1" ferry="$2" onnx="$3" name="$4"; shift 4
  mkdir -p "$dir"
  cp "$onnx" "$dir/model.onnx"
  cat > "$dir/ferry.yaml" <<YAML
name: bench
stages:
  model:
    cmd: mkdir -p work && cp model.onnx work/model.onnx
    deps: [model.onnx]
    outs: [work/model.onnx]
register:
  model: $name
  artifact: work/model.onnx
  alias: production
  signature:
    inputs: [$(IFS=,; echo "$*" | sed 's/,/, /g')]
YAML
  (cd "$dir" && "$ferry" run >&2)
}

# iris_project DIR FERRY: the harness's Iris model ($SHARED/iris_logreg.onnx)
# as iris@production with its signature.
iris_project() {
  model_project "$1" "$2" "$SHARED/iris_logreg.onnx" iris \
    sepal_length sepal_width petal_length petal_width
}
