"""mlflow.pyfunc loader for the ONNX models ferry registers.

ferry writes this file into a version's folder (`code/`) with its MLmodel,
whose `python_function` flavour names it as the loader module. mlflow.onnx's
own pyfunc wrapper returns every graph output as one DataFrame column, which
fails for a classifier (labels of shape [n], probabilities of shape [n, k]);
this one answers as `ferry serve` and `mlflow models serve` do for a
scikit-learn model: the first output (a classifier's labels, a regressor's
values). `mlflow.onnx.load_model` still gives the graph itself.
"""
import numpy as np
import onnxruntime

_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,
}


def _load_pyfunc(path):
    return _OnnxModel(path)


class _OnnxModel:
    def __init__(self, path):
        self.session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        self.inputs = self.session.get_inputs()
        self.first_output = self.session.get_outputs()[0].name

    def _feed(self, data):
        if isinstance(data, dict):
            return {i.name: np.asarray(data[i.name], dtype=_DTYPES.get(i.type)) for i in self.inputs}
        if len(self.inputs) != 1:
            names = ", ".join(i.name for i in self.inputs)
            raise ValueError(f"the model takes several inputs ({names}): pass a dict of arrays")
        only = self.inputs[0]
        # A DataFrame arrives in the signature's column order (mlflow
        # enforces the signature before predict).
        array = np.asarray(data, dtype=_DTYPES.get(only.type))
        if array.ndim == 1:
            array = array.reshape(1, -1)
        return {only.name: array}

    def predict(self, data, params=None):
        (out,) = self.session.run([self.first_output], self._feed(data))
        return out
