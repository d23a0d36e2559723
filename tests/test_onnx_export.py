"""ONNX export of models with generated activations (torch.onnx.export, the default exporter), run in
onnxruntime and compared with PyTorch: the eager module, a learnable per-channel parameter, and the Triton
backend (a custom op ONNX cannot express: the export falls back to the same function's eager math)."""

import io
import warnings

import numpy as np
import pytest
import torch

import actsym
from actsym.codegen.custom_op import triton_available

ort = pytest.importorskip("onnxruntime")  # declared in the [test] extra: present in CI


def _roundtrip(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), buf, input_names=["x"], output_names=["y"])
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x.numpy()})[0]


def _model(act: torch.nn.Module, channels: int = 4) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, channels, 3), act, torch.nn.Flatten(), torch.nn.LazyLinear(5))


@pytest.mark.parametrize("name, init", [("exp2", {}), ("mish", {}), ("swish", {"beta": 1.7})])
def test_eager_module_exports_and_matches_onnxruntime(name, init):
    model = _model(actsym.get(name).module(**init)).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(_roundtrip(model, x), expected, rtol=1e-5, atol=1e-5)


def test_per_channel_parameters_export():
    act = actsym.get("swish").module(num_parameters=4)
    with torch.no_grad():
        act.beta.copy_(torch.tensor([0.5, 1.0, 2.0, 4.0]))
    model = _model(act).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(_roundtrip(model, x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not triton_available(), reason="the triton backend needs the triton package")
def test_triton_backend_exports_its_eager_math():
    act = actsym.get("swish").module(backend="triton", num_parameters=4)
    with torch.no_grad():
        act.beta.copy_(torch.tensor([0.5, 1.0, 2.0, 4.0]))
    model = _model(act).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(_roundtrip(model, x), expected, rtol=1e-5, atol=1e-5)
