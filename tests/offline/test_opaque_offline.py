"""An opaque pair (a block compared at its top) has its weights planned over both subtrees offline, as live.

Live, an opaque pair's tensors are the whole subtrees' (:mod:`padiff.weights.opaque_plan`): its
gradients and trained weights are compared, and the weight copy converts them. A recorded run
or a weights file holds the same subtrees, so ``compare_runs`` and ``import_weights`` must plan
them too, instead of finding no tensors of the top's own and giving up.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

import padiff
from padiff.layer_map import LayerMap, LayerPair

OPTS = {"atol": 1e-5, "rtol": 1e-4}


def _models() -> tuple[Any, Any, np.ndarray]:
    import paddle
    import torch

    class PdMlp(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.up, self.down = paddle.nn.Linear(4, 6), paddle.nn.Linear(6, 5)

        def forward(self, x: Any) -> Any:
            return self.down(paddle.nn.functional.relu(self.up(x)))

    class Pd(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.mlp, self.head = PdMlp(), paddle.nn.Linear(5, 3)

        def forward(self, x: Any) -> Any:
            return self.head(self.mlp(x))

    class PtMlp(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w_in, self.w_out = torch.nn.Linear(4, 6), torch.nn.Linear(6, 5)

        def forward(self, x: Any) -> Any:
            return self.w_out(torch.relu(self.w_in(x)))

    class Pt(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block, self.out = PtMlp(), torch.nn.Linear(5, 3)

        def forward(self, x: Any) -> Any:
            return self.out(self.block(x))

    return Pd(), Pt(), np.random.default_rng(0).standard_normal((3, 4)).astype("float32")


MAP = LayerMap(pairs=[LayerPair("mlp", "block", "PdMlp", "PtMlp", opaque=True), LayerPair("head", "out")])


def _record(model: Any, folder: str, x: Any) -> None:
    rec = padiff.Recorder(model, folder, graph=False)
    with rec.step(0):
        loss = (model(x) ** 2).mean()
        rec.loss(loss)
        loss.backward()
    rec.close()


def test_opaque_pair_weights_are_imported_and_compared(tmp_path: Any) -> None:
    import paddle
    import torch

    pd_m, pt_m, x = _models()
    path = padiff.export_weights(pt_m, os.path.join(str(tmp_path), "w.safetensors"))
    lines = padiff.import_weights(pd_m, path, layer_map=MAP)
    assert any("mlp" in line for line in lines)
    pairs = {"mlp.up": pt_m.block.w_in, "mlp.down": pt_m.block.w_out, "head": pt_m.out}
    for p_path, lin in pairs.items():
        layer = dict(pd_m.named_sublayers())[p_path]
        np.testing.assert_array_equal(layer.weight.numpy(), lin.weight.detach().numpy().T)
        np.testing.assert_array_equal(layer.bias.numpy(), lin.bias.detach().numpy())
    pd, pt = os.path.join(str(tmp_path), "pd"), os.path.join(str(tmp_path), "pt")
    _record(pd_m, pd, paddle.to_tensor(x))
    _record(pt_m, pt, torch.from_numpy(x))
    rep = padiff.compare_runs(pd, pt, layer_map=MAP, options=OPTS)
    grads = {r.item for r in rep.records if r.stage == "grad" and r.paddle_path == "mlp"}
    assert grads == {"up.weight", "up.bias", "down.weight", "down.bias"}, [str(r) for r in rep.records]
    assert rep and not any("parameters not compared" in w for w in rep.warnings), rep.warnings


def test_the_opaque_pair_records_are_the_live_ones(tmp_path: Any) -> None:
    import paddle
    import torch

    pd_m, pt_m, x = _models()
    padiff.import_weights(pd_m, padiff.export_weights(pt_m, os.path.join(str(tmp_path), "w.safetensors")),
                          layer_map=MAP)
    pd, pt = os.path.join(str(tmp_path), "pd"), os.path.join(str(tmp_path), "pt")
    _record(pd_m, pd, paddle.to_tensor(x))
    _record(pt_m, pt, torch.from_numpy(x))
    pd_live, pt_live, _ = _models()
    padiff.import_weights(pd_live, os.path.join(str(tmp_path), "w.safetensors"), layer_map=MAP)
    pt_live.load_state_dict(pt_m.state_dict())
    live = padiff.compare(pd_live, pt_live, ({"x": paddle.to_tensor(x)}, {"x": torch.from_numpy(x)}), layer_map=MAP,
                          options=OPTS, loss_fn=(lambda o: (o ** 2).mean(), lambda o: (o ** 2).mean()))
    off = padiff.compare_runs(pd, pt, layer_map=MAP, options=OPTS)

    def keys(rep: Any) -> set[tuple[str, str, str, str]]:
        return {(r.stage, r.paddle_path, r.torch_path, r.item) for r in rep.records if r.stage == "grad"}

    assert keys(off) == keys(live) and keys(live)  # (live without an optimizer compares no trained weights)


def _attention() -> tuple[Any, Any, np.ndarray]:
    import paddle
    import torch

    class Pd(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.attn, self.head = paddle.nn.MultiHeadAttention(8, 2), paddle.nn.Linear(8, 3)

        def forward(self, x: Any) -> Any:
            return self.head(self.attn(x, x, x))

    class Pt(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn, self.head = torch.nn.MultiheadAttention(8, 2, batch_first=True), torch.nn.Linear(8, 3)

        def forward(self, x: Any) -> Any:
            return self.head(self.attn(x, x, x, need_weights=False)[0])

    torch.manual_seed(0)
    pt = Pt()
    with torch.no_grad():
        pt.attn.in_proj_bias.normal_()
    return Pd(), pt, np.random.default_rng(1).standard_normal((2, 5, 8)).astype("float32")


def test_square_weights_of_framework_layers_are_oriented_as_live(tmp_path: Any) -> None:
    """torch's packed ``in_proj_weight`` [3E, E] against paddle's q/k/v Linears [E, E]: square, so the shapes do
    not tell copy from transpose; the layouts the framework layers fix (recorded with the skeleton) do, as live."""
    import paddle
    import torch

    lm = LayerMap(pairs=[LayerPair("attn", "attn", "MultiHeadAttention", "MultiheadAttention", opaque=True),
                         LayerPair("head", "head")])
    pd_m, pt_m, x = _attention()
    path = padiff.export_weights(pt_m, os.path.join(str(tmp_path), "w.safetensors"))
    padiff.import_weights(pd_m, path, layer_map=lm)
    w = pt_m.attn.in_proj_weight.detach().numpy()
    for i, name in enumerate(("q_proj", "k_proj", "v_proj")):
        np.testing.assert_array_equal(getattr(pd_m.attn, name).weight.numpy(), w[i * 8:(i + 1) * 8].T)
    pd, pt = os.path.join(str(tmp_path), "pd"), os.path.join(str(tmp_path), "pt")
    _record(pd_m, pd, paddle.to_tensor(x))
    _record(pt_m, pt, torch.from_numpy(x))
    off = padiff.compare_runs(pd, pt, layer_map=lm, options=OPTS)
    grads = [r for r in off.records if r.stage == "grad" and r.paddle_path == "attn"]
    assert {r.item for r in grads} >= {"q_proj.weight", "k_proj.weight", "v_proj.weight"}
    assert off, [str(r) for r in off.failures()]


def test_auto_adds_the_special_init_pairs_live_auto_adds(tmp_path: Any) -> None:
    """Live ``"auto"`` pairs a paddle ``MultiHeadAttention`` with a torch ``MultiheadAttention`` as a whole (a
    registered special init); the recorded skeletons say which layers are such kinds, so ``compare_runs`` does too."""
    import paddle
    import torch

    pd_m, pt_m, x = _attention()
    padiff.import_weights(pd_m, padiff.export_weights(pt_m, os.path.join(str(tmp_path), "w.safetensors")),
                          layer_map=LayerMap(pairs=[LayerPair("attn", "attn", opaque=True), LayerPair("head", "head")]))
    pd, pt = os.path.join(str(tmp_path), "pd"), os.path.join(str(tmp_path), "pt")
    _record(pd_m, pd, paddle.to_tensor(x))
    _record(pt_m, pt, torch.from_numpy(x))
    off = padiff.compare_runs(pd, pt, layer_map="auto", options=OPTS)
    live = padiff.compare(pd_m, pt_m, ({"x": paddle.to_tensor(x)}, {"x": torch.from_numpy(x)}), layer_map="auto",
                          options=OPTS, loss_fn=(lambda o: (o ** 2).mean(), lambda o: (o ** 2).mean()))

    def keys(rep: Any) -> set[tuple[str, str, str, str]]:
        return {(r.stage, r.paddle_path, r.torch_path, r.item) for r in rep.records if r.stage != "weight"}

    assert live and off, [str(r) for r in off.failures()][:5]
    assert keys(off) == keys(live)
    assert any("special-init pairs added" in w for w in off.warnings)
