"""Generated modules behave like PyTorch's own: pickle/torch.save in a fresh process, inplace= accepted."""

import io
import subprocess
import sys

import torch

import actsym


def test_defined_module_pickles_and_loads_in_a_fresh_process(tmp_path):
    act = actsym.define("mysw", "x*sigmoid(b*x)", {"b": 1.5})
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), act.module(backend="eager", num_parameters=4))
    with torch.no_grad():
        model[1].b.copy_(torch.tensor([0.5, 1.0, 1.5, 2.0]))
    x = torch.randn(2, 3)
    torch.save(model, tmp_path / "m.pt")
    torch.save((x, model(x).detach()), tmp_path / "xy.pt")
    code = (f"import torch; m = torch.load({str(tmp_path / 'm.pt')!r}, weights_only=False); "
            f"x, y = torch.load({str(tmp_path / 'xy.pt')!r}); "
            "assert torch.equal(m(x), y) and m[1].b.tolist() == [0.5, 1.0, 1.5, 2.0]; "
            "m(x).sum().backward(); assert m[1].b.grad is not None")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


def test_catalog_module_pickles():
    m = actsym.get("prelu").module(backend="eager")
    buf = io.BytesIO()
    torch.save(m, buf)
    buf.seek(0)
    m2 = torch.load(buf, weights_only=False)
    x = torch.randn(5)
    assert torch.equal(m(x), m2(x))


def test_inplace_keyword_is_accepted_like_nn_relu():
    for act in (actsym.get("silu"), actsym.get("prelu"), actsym.define("t", "x*tanh(x)")):
        m = act.module_class(inplace=True)
        x = torch.randn(4)
        before = x.clone()
        m(x)
        assert torch.equal(x, before)  # accepted, ignored: the input is never modified


def test_replace_activations_by_class_name_and_predicate():
    from torch import nn

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True), nn.Sequential(nn.Conv2d(4, 4, 1), nn.ReLU()))
    assert actsym.replace_activations(model, old=nn.ReLU, new=actsym.get("prelu"), num_parameters=4) == 2
    assert type(model[1]).__name__ == "PReLU" and model[1] is not model[2][1]
    model(torch.randn(1, 3, 8, 8)).sum().backward()
    assert model[2][1].a.grad.shape == (4,)
    assert actsym.replace_activations(model, old="prelu", new="exp2") == 2
    assert actsym.replace_activations(model, old=lambda name, m: name == "0", new=nn.Identity) == 1
    assert isinstance(model[0], nn.Identity)
