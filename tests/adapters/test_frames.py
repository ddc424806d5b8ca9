"""The call stack a report shows: the model's own code, package or not; not the frameworks' machinery."""

from __future__ import annotations

import os

from padiff.adapters.frames import source_text, user_stack

SITE = os.path.join(os.sep, "venv", "lib", "python3.11", "site-packages")


def _fn(path: str, src: str, name: str):
    scope: dict = {}
    exec(compile(src, path, "exec"), scope)
    return scope[name]


def _call_through_package_model(framework_dir: str, model_file: str):
    machinery = _fn(os.path.join(SITE, *framework_dir.split("/")), "def __call__(fn):\n    return fn()\n",
                    "__call__")
    model = _fn(os.path.join(SITE, *model_file.split("/")), "def forward(call, fn):\n    return call(fn)\n",
                "forward")
    script = _fn(os.path.join(os.sep, "venv", "bin", "padiff"), "def main(f):\n    return f()\n", "main")
    return script(lambda: model(machinery, user_stack))


def test_forward_of_a_paddle_package_model_is_shown_and_the_call_machinery_is_not():
    stack = _call_through_package_model("paddle/nn/layer/layers.py", "paddle/vision/models/resnet.py")
    files = [os.path.relpath(f, SITE) if f.startswith(SITE) else f for f, _, _ in stack]
    assert stack[-1][1:] == (2, "forward") and files[-1] == os.path.join("paddle", "vision", "models", "resnet.py")
    assert not any(f.endswith("layers.py") for f in files)
    assert not any(f.endswith(os.path.join("bin", "padiff")) for f in files)
    assert any(f == os.path.abspath(__file__) for f in files)  # the user's code that started it


def test_framework_building_blocks_are_left_out_and_other_packages_kept():
    stack = _call_through_package_model("torch/nn/modules/module.py", "torch/nn/modules/container.py")
    assert not any(os.sep + "torch" + os.sep in f for f, _, _ in stack)  # Sequential.forward is not the model
    stack = _call_through_package_model("torch/nn/modules/module.py", "torchvision/models/resnet.py")
    assert stack[-1][0].endswith(os.path.join("torchvision", "models", "resnet.py"))


def test_the_stacks_of_a_run_hold_no_padiff_frame():
    # padiff's own frames (the engine, the adapters' hook wrappers) sit between the framework and the hook
    from models.basic import mlp_pair

    import padiff

    layer, module, inp = mlp_pair()
    rep = padiff.compare(layer, module, inp, auto_weights=True, options={"atol": 1e-5})
    stacks = [f for r in rep.records for f in r.paddle_stack + r.torch_stack]
    assert stacks
    package = os.path.dirname(os.path.abspath(padiff.__file__)) + os.sep
    assert not [f for f in stacks if os.path.abspath(f[0]).startswith(package)]


def _users_code() -> tuple[tuple[str, int, str], ...]:
    return user_stack()


def test_user_stack_keeps_the_callers_frames_innermost_last_and_drops_pytests():
    frames = _users_code()
    assert frames[-1][0] == __file__ and frames[-1][2] == "_users_code"
    assert not any("_pytest" in f for f, _, _ in frames)
    assert len(user_stack(limit=1)) <= 1


def test_source_text_names_file_line_function_and_code():
    frame = _users_code()[-1]
    assert source_text(frame).startswith(f"{__file__}:{frame[1]} (_users_code): return user_stack()")
    assert source_text(None) == ""
