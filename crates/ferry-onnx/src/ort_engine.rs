//! The onnxruntime engine (cargo feature `ort`).
