"""The HTML report: well-formed, self-contained, trees linked, numbers present; rendered in Chromium if present."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from records_factory import make_report, nan_record

from padiff.report.html import render_html, write_html

VOID = {"meta", "br", "hr", "img", "input", "link", "area", "base", "col", "embed", "source", "track", "wbr"}
SVG_SELF_CLOSING = {"rect", "line", "polyline", "circle", "path"}


class Checker(HTMLParser):
    """Checks nesting, collects data-pair links, ids, text, and any URL-bearing attribute."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.pairs: dict[str, list[tuple[str, dict]]] = {}
        self.ids: set[str] = set()
        self.urls: list[str] = []
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        d = dict(attrs)
        self.tags.append(tag)
        for k, v in attrs:
            if k in ("src", "href", "action", "xlink:href") or (v and re.search(r"(https?:|//|url\()", v)):
                self.urls.append(f"{tag} {k}={v}")
        if "id" in d:
            assert d["id"] not in self.ids, f"duplicate id {d['id']}"
            self.ids.add(d["id"])
        if "data-pair" in d:
            self.pairs.setdefault(d["data-pair"], []).append((tag, d))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}>, open: {self.stack[-3:]}")
            return
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def check(page: str) -> Checker:
    c = Checker()
    c.feed(page)
    c.close()
    assert not c.errors, c.errors[:5]
    assert not c.stack, f"unclosed tags: {c.stack}"
    return c


def test_html_is_well_formed_and_self_contained():
    page = render_html(make_report())
    c = check(page)
    assert page.startswith("<!DOCTYPE html>")
    assert c.urls == []
    assert "http" not in page and "<link" not in page and "@import" not in page
    assert {"style", "script", "svg"} <= set(c.tags)


def test_trees_side_by_side_with_pairs_linked():
    c = check(render_html(make_report()))
    assert {"paddle-tree", "torch-tree", "pairs", "plots", "summary"} <= c.ids
    # every pair is present on both trees, in the table and in the plots
    for key, elems in c.pairs.items():
        classes = [d.get("class", "") for _, d in elems]
        nodes = [cl for cl in classes if "node" in cl.split()]
        if any("pt" in cl.split() for cl in classes) and nodes:
            assert len(nodes) == 2, (key, classes)
    fc2 = [k for k, elems in c.pairs.items()
           if any(d.get("title", "") == "paired with enc.second" for _, d in elems)]
    assert len(fc2) == 1
    tags = {t for t, _ in c.pairs[fc2[0]]}
    assert {"div", "tr", "circle"} <= tags


def test_first_diff_is_highlighted_and_numbers_shown():
    rep = make_report()
    page = render_html(rep)
    c = check(page)
    text = " ".join(c.text)
    assert "padiff: FAILED — first difference in forward, step 0: paddle encoder.fc2 (Linear) ↔ torch enc.second" \
        in text
    assert page.count("&lt;--- *** HERE ***") == 2
    assert page.count('class="node paired fail first"') == 2
    assert 'class="pt fail first"' in page and "first diff: encoder.fc2 ↔ enc.second" in text
    assert re.search(r'<tr class="first" data-pair="\d+"><td>encoder.fc2', page)
    for needle in ("cosine", "min passing atol", "min passing rtol", "would pass with", "suggested tolerance",
                   "0.1 / 1", "the paddle model is in train mode", "functional relu on the torch side"):
        assert needle in text, needle


def test_one_plot_per_stage_on_log_scale():
    page = render_html(make_report(steps=2))
    svgs = re.findall(r'<svg [^>]*data-stage="(\w+)" data-x="(\w+)"', page)
    assert sorted(svgs) == sorted((s, x) for s in ("forward", "loss", "backward", "grad") for x in ("order", "depth"))
    assert "1e-8" in page and "1e-1" in page  # decades on the y axis
    assert "step 1" in page  # step separator on multi-step runs
    assert "atol" in page


def test_success_and_nan_and_empty_reports_render():
    ok = render_html(make_report(fail_at=None))
    assert "padiff: SUCCESS" in ok and "HERE" not in ok
    check(ok)
    rep = make_report(fail_at=None)
    rep.records.insert(0, nan_record())
    page = render_html(rep)
    check(page)
    assert "inf/nan" in page
    from padiff.report.records import DiffReport

    check(render_html(DiffReport()))


def test_escaping_of_user_strings(tmp_path):
    rep = make_report()
    rep.warnings.append('<script>alert("x")</script> & more')
    page = render_html(rep)
    check(page)
    assert '<script>alert("x")' not in page and "&lt;script&gt;" in page


def test_write_html_creates_directories(tmp_path):
    path = write_html(make_report(), str(tmp_path / "a" / "b" / "report.html"))
    assert os.path.isfile(path) and os.listdir(tmp_path / "a" / "b") == ["report.html"]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")
def test_renders_in_headless_chromium(tmp_path):
    html_path = write_html(make_report(steps=2), str(tmp_path / "report.html"))
    shot = tmp_path / "shot.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1600", f"--screenshot={shot}",
           "file://" + html_path]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    assert shot.is_file() and shot.stat().st_size > 20_000
    # the DOM after scripts ran: the page loaded and nothing was fetched from the network
    dom = subprocess.run([*cmd[:-2], "--dump-dom", "file://" + html_path], capture_output=True, text=True,
                         timeout=120, check=False).stdout
    assert "padiff: FAILED" in dom and 'id="torch-tree"' in dom
    # the linking script ran: #pair=K pins pair K in both trees, the table and the plots
    page = render_html(make_report(steps=2))
    c = check(page)
    key = next(k for k, elems in c.pairs.items() if any(d.get("title") == "paired with enc.second" for _, d in elems))
    dom = subprocess.run([*cmd[:-2], "--dump-dom", f"file://{html_path}#pair={key}"], capture_output=True, text=True,
                         timeout=120, check=False).stdout
    pinned = re.findall(r'<(\w+) class="([^"]*\bpin\b[^"]*)" data-pair="(\d+)"', dom)
    assert {k for _, _, k in pinned} == {key}
    assert sum("node" in cls for _, cls, _ in pinned) == 2 and any(tag == "tr" for tag, _, _ in pinned)


# --- fuzzing: any numbers render, and the HTML stays well-formed -------------------------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from padiff.compare.arrays import Stats  # noqa: E402
from padiff.report.records import Comparison, DiffReport  # noqa: E402
from padiff.report.text import render_summary  # noqa: E402

floats = st.floats(allow_nan=True, allow_infinity=True)
names = st.text(alphabet="ab.<>&\"' _0", max_size=6)
record = st.builds(
    lambda stage, step, pp, tp, passed, a, r, c, n, order, depth: Comparison(
        stage, step, pp, tp, "L", "M", Stats(passed=passed, max_abs_diff=a, max_rel_diff=r, mismatched=n,
                                             total=max(n, 1), paddle_mean=a, torch_mean=r, cosine=c, min_atol=a,
                                             min_rtol=r), order=order,
        depth=depth),
    st.sampled_from(["forward", "loss", "backward", "grad", "weight", "assign_weight"]), st.integers(0, 2), names,
    names, st.booleans(), floats, floats, floats, st.integers(0, 5), st.integers(0, 5), st.integers(0, 4))


@settings(max_examples=60, deadline=None)
@given(st.lists(record, max_size=12), st.lists(st.tuples(names, names, st.integers(0, 3)), max_size=5))
def test_fuzz_renderers(records, tree):
    rep = DiffReport(records=records, options={"atol": 0.0, "rtol": 1e-7}, stages=["forward"])
    rep.paddle_tree = rep.torch_tree = tree
    check(render_html(rep))
    assert render_summary(rep).startswith("padiff: ")


def test_colour_and_number_per_stage_with_a_selector():
    rep = make_report()
    # a strict failure: forward fails from fc2 on, but only the grads fail at fc1 (gradient noise)
    page = render_html(rep)
    check(page)
    assert '<body data-stage="forward">' in page  # opens on the first difference's stage
    assert re.findall(r'<button data-stage="(\w+)"', page) == ["forward", "loss", "backward", "grad"]
    fc1 = re.search(r'<div class="node paired[^"]*" data-pair="\d+" title="paired with enc.first"([^>]*)>(.*?)</div>',
                    page)
    attrs, inner = fc1.groups()
    assert 'data-st-forward="pass"' in attrs and 'data-st-grad="fail"' in attrs
    assert '<span class="num st" data-st="forward">1e-08</span>' in inner
    assert '<span class="num st" data-st="grad">0.03</span>' in inner
    assert 'body[data-stage="grad"] .node[data-st-grad="fail"]' in page
    assert page.index('id="first-diff"') < page.index('id="stages"') < page.index('id="plots"')


def test_one_point_stage_is_a_sentence_and_conversions_a_folded_table():
    rep = make_report()
    rep.conversions = [f"fc{i} <- lin{i}: weight <- weight: inferred transpose" for i in range(20)]
    page = render_html(rep)
    check(page)
    loss = page.split('class="stageplots" data-stage="loss"')[1].split("</div>")[0]
    assert "<svg" not in loss and "One comparison" in loss
    conv = page.split('id="conversions"')[1].split("</details>")[0]
    assert conv.count("<tr>") == 21
    assert "<td>fc3 &lt;- lin3</td><td>weight &lt;- weight: inferred transpose</td>" in conv
    assert 'id="conversions" open' not in page


def test_relative_diff_has_its_own_axis():
    rep = make_report(fail_at=None)
    page = render_html(rep)
    svg = re.search(r'<svg [^>]*data-stage="forward" data-x="order".*?</svg>', page).group(0)
    assert 'class="tick rel"' in svg and "max rel diff (log)" in svg
    assert 'width="100%"' not in svg and "svg.plot{" in page and "width:100%" in page


def _pixels(path):
    from PIL import Image

    return Image.open(path).convert("RGB")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")
def test_stage_view_in_headless_chromium(tmp_path):
    pytest.importorskip("PIL")
    html_path = write_html(make_report(), str(tmp_path / "report.html"))
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,900", "--hide-scrollbars"]

    def shot(fragment: str, name: str):
        out = tmp_path / name
        subprocess.run([*base, f"--screenshot={out}", f"file://{html_path}{fragment}"], capture_output=True,
                       timeout=120, check=False)
        dom = subprocess.run([*base, "--dump-dom", f"file://{html_path}{fragment}"], capture_output=True, text=True,
                             timeout=120, check=False).stdout
        return _pixels(out), dom

    def where(img, rgb, tol=12):
        pts = [(x, y) for y in range(0, img.height, 2) for x in range(0, img.width, 2)
               if all(abs(a - b) <= tol for a, b in zip(img.getpixel((x, y)), rgb))]
        return pts

    img, dom = shot("", "forward.png")
    assert '<body data-stage="forward">' in dom and 'id="first-diff"' in dom
    banner = where(img, (0xFD, 0xE8, 0xE6))  # the first-difference banner's background
    assert banner and min(y for _, y in banner) < 150  # at the top of the page, without scrolling
    active = where(img, (0x1D, 0x4E, 0xD8))  # the selected stage button (and the selected x-axis button)
    assert active
    img2, dom2 = shot("#stage=grad", "grad.png")
    assert '<body data-stage="grad">' in dom2
    assert re.search(r'<button data-stage="grad" class="active">', dom2)
    assert not re.search(r'<button data-stage="forward" class="active">', dom2)
    active2 = where(img2, (0x1D, 0x4E, 0xD8))
    assert max(x for x, _ in active2) > max(x for x, _ in active) + 100  # the highlight moved to "grads"


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")
def test_deep_first_difference_keeps_the_tree_roots_in_view(tmp_path):
    pytest.importorskip("PIL")
    from records_factory import rec

    rep = make_report(fail_at=None)
    rows = [(f"blocks.{i}", "Linear", 1) for i in range(120)]
    rep.paddle_tree = [("", "PaddleNet", 0), *rows]
    rep.torch_tree = [("", "TorchNet", 0), *rows]
    rep.records.append(rec("forward", 99, "blocks.110", "blocks.110", "Linear", "Linear", 0.5, False, depth=1))
    html_path = write_html(rep, str(tmp_path / "report.html"))
    shot = tmp_path / "trees.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400", "--hide-scrollbars",
                    f"--screenshot={shot}", f"file://{html_path}"], capture_output=True, timeout=120, check=False)
    img = _pixels(shot)
    root = (0xE6, 0xEB, 0xF3)  # the root row's background
    found = {x * 2 // img.width for y in range(0, img.height, 2) for x in range(0, img.width, 3)
             if all(abs(a - b) <= 3 for a, b in zip(img.getpixel((x, y)), root))}
    assert found == {0, 1}  # the root row is on screen in both trees, left and right
