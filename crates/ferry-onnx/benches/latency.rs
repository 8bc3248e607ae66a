//! Latency of `OnnxModel::run` on every fixture model (not a timed test).
//!
//! For each model in `tests/fixtures`: single-row latency (the first row of
//! the fixture's batch, one `run` call per row, as a gateway makes them) and
//! batch latency (150 rows, cycling through the fixture's batch), in
//! nanoseconds per row; the median of 5 rounds of about 0.2 s each, after a
//! warm-up. Prints one tab-separated line per model:
//! `model  single_ns_per_row  batch150_ns_per_row`. `latency.sh` puts these
//! beside onnxruntime's (`latency.py`).
//!
//!     cargo bench -p ferry-onnx --bench latency [-- model ...]
//!
//! With `--calls N`, it times N single-row calls one by one instead (after
//! 1,000 warm-up calls), each on the next row of the fixture's batch in
//! turn, and prints `model  median_ns  p99_ns  calls` (`latency.py --calls N`
//! does the same with onnxruntime; `latency.sh --calls N` runs both).
//!
//! `FERRY_BENCH_ENGINE=ort` measures the onnxruntime engine instead (build
//! with `--features ort`, set `ORT_DYLIB_PATH`).

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use ferry_onnx::{DType, Engine, OnnxModel, Tensor, TensorData};
use serde_json::Value;

const BATCH: usize = 150;
const ROUNDS: usize = 5;
const ROUND: Duration = Duration::from_millis(200);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let calls: Option<usize> = args
        .iter()
        .position(|a| a == "--calls")
        .map(|i| args[i + 1].parse().expect("--calls takes a number"));
    let only: Vec<String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| !a.starts_with('-') && (*i == 0 || args[i - 1] != "--calls"))
        .map(|(_, a)| a.clone())
        .collect();
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and
    // then each model runs once (a smoke test, not a measurement).
    let timing = std::env::args().any(|a| a == "--bench");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|n| n != "refusals" && (only.is_empty() || only.contains(n)))
        .collect();
    names.sort();
    let engine = std::env::var("FERRY_BENCH_ENGINE").map_or(Engine::Native, |e| {
        Engine::from_name(&e).unwrap_or_else(|| panic!("unknown engine `{e}` (native or ort)"))
    });
    if calls.is_some() {
        println!("model\tmedian_ns\tp99_ns\tcalls");
    } else {
        println!("model\tsingle_ns_per_row\tbatch{BATCH}_ns_per_row");
    }
    for name in names {
        let doc: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap(),
        )
        .unwrap();
        let model = OnnxModel::from_file_with(&dir.join(format!("{name}.onnx")), engine).unwrap();
        let batch = &doc["cases"][0]["inputs"];
        if let Some(n) = calls {
            let rows = batch_rows(&model, batch);
            let timings = per_call(&model, &rows, if timing { n } else { 1 });
            println!("{name}\t{:.0}\t{:.0}\t{n}", timings.0, timings.1);
            continue;
        }
        let single: Vec<Tensor> = inputs(&model, batch, 1);
        let many: Vec<Tensor> = inputs(&model, batch, BATCH);
        if !timing {
            model.run(single.clone()).unwrap();
            model.run(many.clone()).unwrap();
            println!("{name}\tok\tok");
            continue;
        }
        let single_ns = measure(|| model.run(single.clone()).unwrap());
        let batch_ns = measure(|| model.run(many.clone()).unwrap()) / BATCH as f64;
        println!("{name}\t{single_ns:.0}\t{batch_ns:.0}");
    }
}

/// The first `rows` rows of the fixture's batch, cycling when it has fewer.
fn inputs(model: &OnnxModel, batch: &Value, rows: usize) -> Vec<Tensor> {
    inputs_from(model, batch, 0, rows)
}

/// `rows` rows of the fixture's batch from row `first` on, cycling.
fn inputs_from(model: &OnnxModel, batch: &Value, first: usize, rows: usize) -> Vec<Tensor> {
    model
        .inputs()
        .iter()
        .map(|spec| {
            let v = &batch[&spec.name];
            let shape: Vec<usize> = v["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            let width: usize = shape[1..].iter().product();
            let have = shape[0];
            let data = v["data"].as_array().unwrap();
            let picked: Vec<&Value> = (first..first + rows)
                .flat_map(|r| &data[(r % have) * width..(r % have + 1) * width])
                .collect();
            let data = match spec.dtype {
                DType::F32 => {
                    TensorData::F32(picked.iter().map(|x| x.as_f64().unwrap() as f32).collect())
                }
                DType::F64 => TensorData::F64(picked.iter().map(|x| x.as_f64().unwrap()).collect()),
                DType::I64 => TensorData::I64(picked.iter().map(|x| x.as_i64().unwrap()).collect()),
                DType::Str => TensorData::Str(
                    picked
                        .iter()
                        .map(|x| x.as_str().unwrap().to_owned())
                        .collect(),
                ),
                other => panic!("no benchmark input of type {other}"),
            };
            let mut shape = shape;
            shape[0] = rows;
            Tensor::new(spec.name.clone(), shape, data)
        })
        .collect()
}

/// Every row of the fixture's batch, alone.
fn batch_rows(model: &OnnxModel, batch: &Value) -> Vec<Vec<Tensor>> {
    let first = &model.inputs()[0].name;
    let n = batch[first]["shape"][0].as_u64().unwrap() as usize;
    (0..n).map(|r| inputs_from(model, batch, r, 1)).collect()
}

/// Median and 99th percentile of `n` single-row calls timed one by one
/// (after 1,000 warm-up calls), cycling through `rows`; the inputs are
/// cloned before the clock starts.
fn per_call(model: &OnnxModel, rows: &[Vec<Tensor>], n: usize) -> (f64, f64) {
    for k in 0..n.min(1000) {
        black_box(model.run(rows[k % rows.len()].clone()).unwrap());
    }
    let mut ns: Vec<f64> = (0..n)
        .map(|k| {
            let input = rows[k % rows.len()].clone();
            let t = Instant::now();
            black_box(model.run(input).unwrap());
            t.elapsed().as_nanos() as f64
        })
        .collect();
    ns.sort_by(f64::total_cmp);
    let p99 = ((n as f64 * 0.99).ceil() as usize).clamp(1, n) - 1;
    (ns[n / 2], ns[p99])
}

/// Median nanoseconds per call.
fn measure<T>(mut f: impl FnMut() -> T) -> f64 {
    // Warm up and size a round.
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < Duration::from_millis(100) {
        black_box(f());
        calls += 1;
    }
    let per_call = start.elapsed().as_secs_f64() / calls as f64;
    let n = ((ROUND.as_secs_f64() / per_call) as u64).max(1);
    let mut rounds: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                black_box(f());
            }
            t.elapsed().as_nanos() as f64 / n as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[ROUNDS / 2]
}
