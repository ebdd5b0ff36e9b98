"""Every CLI command against a table of bad values: one line on stderr, a non-zero exit, no traceback,
no output file left behind (issue 19.12).

The commands are enumerated from the Typer app, so a new command without rows here fails
``test_every_command_has_rows``. The commands run in-process (``convlens.cli.main.run``) with the
models cached for the session, so the whole table takes seconds.
"""
from __future__ import annotations

import functools
import sys
import re
import signal

import numpy as np
import pytest
from PIL import Image

import convlens.cli.main  # noqa: E402

cli_main = sys.modules["convlens.cli.main"]

# placeholders: {img} a valid PNG, {txt} a text file named .png, {missing} no such file, {dir} a folder,
# {out} an output PNG path, {outdir} an existing folder named like a PNG, {store} an embedding store,
# {corpus} a text corpus, {vocab} a vocabulary file
IMG_OUT = ["{img}", "-o", "{out}"]
IMAGE_ROWS = [  # for every command taking IMAGE -o OUT
    ["{missing}", "-o", "{out}"], ["{txt}", "-o", "{out}"], ["{dir}", "-o", "{out}"], ["nosuchsample", "-o", "{out}"],
    ["{img}", "-o", "{outdir}"], ["{img}", "-o", "{out_txt}"], ["{img}", "-o", "{under_file}"],
    [*IMG_OUT, "--model", "nosuchnet"], [*IMG_OUT, "--weights", "{missing}"],
]
TARGET_ROWS = [[*IMG_OUT, "--target", "nosuchclass"], [*IMG_OUT, "--target", "5000"], [*IMG_OUT, "--target", "-3"]]
NEURON_ROWS = [[*IMG_OUT, "--layer", "features.99"], [*IMG_OUT, "--layer", "features.3", "--channel", "9999"],
               [*IMG_OUT, "--layer", "features.3", "--channel", "-1"], [*IMG_OUT, "--layer", "features.3", "--unit", "500,500"],
               [*IMG_OUT, "--layer", "features.3", "--unit", "x"], [*IMG_OUT, "--mode", "nosuchmode"]]
VIZ_ROWS = [["--steps", "0"], ["--steps", "-5"], ["--size", "0"], ["--lr", "-1"], ["--octaves", "0"], ["--preset", "nosuch"],
            ["--optimizer", "nosuch"], ["--param", "nosuch"], ["--octave-scale", "0"], ["--seed", "x"]]

TABLE: dict[tuple, list[list[str]]] = {
    ("models",): [["--all", "extra"], ["--nosuchflag"]],
    ("layers",): [["nosuchnet"], ["mobilenet_v2", "--weights", "{missing}"], ["mobilenet_v2", "--kind", "nosuchkind"]],
    ("predict",): [[], ["{missing}"], ["{txt}"], ["{dir}"], ["nosuchsample"], ["{img}", "--topk", "0"],
                   ["{img}", "--topk", "-3"], ["{img}", "--model", "nosuchnet"], ["{img}", "--topk", "x"]],
    ("samples",): [["extra"]],
    ("demo",): [["--only", "nosuchsection", "--out", "{outdir_new}"], ["--out", "{txt}"]],
    ("filters",): [["-o", "{out}", "--layer", "features.99"], ["-o", "{out}", "--layer", "classifier.1"],
                   ["-o", "{out}", "--max-out", "0"], ["-o", "{out}", "--max-in", "-1"], ["-o", "{out}", "--scale", "nosuch"],
                   ["-o", "{outdir}"], ["-o", "{out_txt}"], ["-o", "{out}", "--model", "nosuchnet"]],
    ("activations",): [r + ["--layer", "features.3"] for r in IMAGE_ROWS]
    + [[*IMG_OUT, "--layer", "features.99"], [*IMG_OUT, "--layer", "features.3", "--max-channels", "0"],
       [*IMG_OUT, "--layer", "features.3", "--top", "-1"], [*IMG_OUT, "--layer", "features.3", "--order", "nosuch"],
       [*IMG_OUT, "--layer", "features.3", "--scale", "nosuch"], [*IMG_OUT, "--layer", "features.3", "--highlight", "-2"]],
    ("concepts",): [["{img}", "-l", "features.3", "-o", "{txt}"], ["{missing}", "-l", "features.3", "-o", "{outdir_new}"],
                    ["nosuchsample", "-l", "features.3", "-o", "{outdir_new}"],
                    ["{img}", "-l", "features.99", "-o", "{outdir_new}"],
                    ["{img}", "-l", "features.3", "-o", "{under_file}"],
                    *[["{img}", "-l", "features.3", "-o", "{outdir_new}", *r] for r in (
                        ["--n", "0"], ["--n", "x"], ["--crop-size", "2"], ["--designs", "0"], ["--negatives", "nosuch"],
                        ["--class", "nosuchclass"], ["--limit", "0"], ["--label", "fish"], ["--batch-size", "0"],
                        ["--heatmaps", "-1"], ["--model", "nosuchnet"], ["--n", "40"], ["--only-predicted"],
                        ["--only-predicted", "--class", "5000"])]],
    ("patches",): [["{img}", "-l", "features.3", "-o", "{out}", "--k", "-3"], ["{img}", "-l", "features.3", "-o", "{out}", "--k", "0"],
                   ["{img}", "-l", "features.3", "-o", "{out}", "--channels", "x"],
                   ["{img}", "-l", "features.3", "-o", "{out}", "--channels", "9999"],
                   ["{img}", "-l", "features.3", "-o", "{out}", "--batch-size", "0"],
                   ["samples:0", "-l", "features.3", "-o", "{out}"], ["samples:x", "-l", "features.3", "-o", "{out}"],
                   ["{missing}", "-l", "features.3", "-o", "{out}"], ["{img}", "-l", "features.99", "-o", "{out}"],
                   ["{img}", "-l", "features.3", "-o", "{outdir}"], ["{img}", "-l", "features.3", "-o", "{out}", "--engine", "nosuch"],
                   ["{img}", "-l", "features.3", "-o", "{out}", "--state", "{dir}"],
                   ["{img}", "-l", "features.3", "-o", "{out}", "--state", "{txt}"]],
    **{(c,): IMAGE_ROWS + TARGET_ROWS + NEURON_ROWS for c in ("saliency", "guided", "deconvnet")},
    ("occlusion",): IMAGE_ROWS + TARGET_ROWS
    + [[*IMG_OUT, "--window", "0"], [*IMG_OUT, "--window", "-16"], [*IMG_OUT, "--window", "1000"], [*IMG_OUT, "--stride", "0"],
       [*IMG_OUT, "--stride", "-8"], [*IMG_OUT, "--baseline", "2"], [*IMG_OUT, "--baseline", "nosuch"],
       [*IMG_OUT, "--score", "nosuch"], [*IMG_OUT, "--batch-size", "0"]],
    # (a folder is an image set for evaluate)
    ("evaluate",): [r for r in IMAGE_ROWS if r[0] != "{dir}"] + TARGET_ROWS + [[*IMG_OUT, "--methods", "nosuchmethod"], [*IMG_OUT, "--metrics", "nosuch"],
                    [*IMG_OUT, "--methods", ","], [*IMG_OUT, "--set", "deletion.steps"], [*IMG_OUT, "--set", "deletion.nosuch=1"],
                    [*IMG_OUT, "--set", "deletion.steps=x"], [*IMG_OUT, "--steps", "0"], [*IMG_OUT, "--limit", "0"],
                    [*IMG_OUT, "--table", "{out_txt}"], [*IMG_OUT, "--metrics", "pointing_game"],
                    [*IMG_OUT, "--set", "sparseness.x=1"], [*IMG_OUT, "--metrics", "pointing_game", "--mask", "1,2,3"],
                    [*IMG_OUT, "--metrics", "pointing_game", "--mask", "0,0,500,500"],
                    [*IMG_OUT, "--metrics", "pointing_game", "--mask", "{missing}"]],
    ("gradcam",): IMAGE_ROWS + TARGET_ROWS + [[*IMG_OUT, "--layer", "features.99"], [*IMG_OUT, "--layer", "classifier.1"]],
    ("smoothgrad",): IMAGE_ROWS + TARGET_ROWS + [[*IMG_OUT, "--samples", "0"], [*IMG_OUT, "--noise", "-1"],
                                                 [*IMG_OUT, "--noise", "nan"]],
    ("ig",): IMAGE_ROWS + TARGET_ROWS + [[*IMG_OUT, "--steps", "0"], [*IMG_OUT, "--steps", "-2"], [*IMG_OUT, "--baseline", "2"],
                                         [*IMG_OUT, "--method", "nosuch"]],
    ("rise",): IMAGE_ROWS + TARGET_ROWS + [[*IMG_OUT, "--masks", "0"], [*IMG_OUT, "--grid", "0"], [*IMG_OUT, "--p", "0"],
                                           [*IMG_OUT, "--p", "1.5"], [*IMG_OUT, "--batch-size", "0"],
                                           [*IMG_OUT, "--backend", "nosuch"]],
    ("scorecam",): IMAGE_ROWS + TARGET_ROWS + [[*IMG_OUT, "--layer", "features.99"], [*IMG_OUT, "--layer", "classifier.1"],
                                               [*IMG_OUT, "--batch-size", "0"], [*IMG_OUT, "--backend", "nosuch"]],
    ("grabcut",): IMAGE_ROWS + [[*IMG_OUT, "--fg", "2"], [*IMG_OUT, "--bg", "-1"], [*IMG_OUT, "--fg", "0.2", "--bg", "0.5"],
                                [*IMG_OUT, "--method", "nosuch"]],
    ("sanity",): [["nosuchmethod", *IMG_OUT], ["saliency", "{missing}", "-o", "{out}"], ["saliency", *IMG_OUT, "--groups", "0"],
                  ["saliency", *IMG_OUT, "--groups", "-1"], ["saliency", "{img}", "-o", "{outdir}"]],
    ("classviz",): [["--target", "nosuchclass", "-o", "{out}"], ["--target", "5000", "-o", "{out}"], ["--target", ",", "-o", "{out}"],
                    ["--target", "flamingo", "-o", "{outdir}"], ["--target", "flamingo", "-o", "{out_txt}"]]
    + [["--target", "flamingo", "-o", "{out}", *r] for r in VIZ_ROWS],
    ("neuronviz",): [["--layer", "features.99", "--channel", "0", "-o", "{out}"], ["--layer", "features.3", "--channel", "9999", "-o", "{out}"],
                     ["--layer", "features.3", "--channel", "x", "-o", "{out}"], ["--layer", "features.3", "--channel", "-1", "-o", "{out}"],
                     ["--layer", "features.3", "--channel", "0", "--unit", "999,999", "-o", "{out}"]]
    + [["--layer", "features.3", "--channel", "0", "-o", "{out}", *r] for r in VIZ_ROWS[:5]],
    ("facets",): [["--layer", "features.99", "--channel", "0", "-o", "{out}"], ["--layer", "features.3", "--channel", "9999", "-o", "{out}"],
                  ["--layer", "features.3", "--channel", "x", "-o", "{out}"], ["--layer", "class", "--channel", "nosuchclass", "-o", "{out}"],
                  ["--layer", "features.3", "--channel", "0", "--images", "{missing}", "-o", "{out}"],
                  ["--layer", "features.3", "--channel", "0", "--images", "samples:x", "-o", "{out}"],
                  ["--layer", "features.3", "--channel", "0", "--n-facets", "0", "-o", "{out}"],
                  ["--layer", "features.3", "--channel", "0", "--steps", "0", "-o", "{out}"]],
    ("dream",): [r + ["--layer", "features.3"] for r in IMAGE_ROWS]
    + [[*IMG_OUT, "--layer", "features.99"], [*IMG_OUT, "--guide", "{missing}"], [*IMG_OUT, "--octaves", "0"],
       [*IMG_OUT, "--steps", "-1"], [*IMG_OUT, "--octave-scale", "0"], [*IMG_OUT, "--lr", "-1"], [*IMG_OUT, "--max-size", "0"]],
    ("invert",): [r + ["--layer", "features.3"] for r in IMAGE_ROWS]
    + [[*IMG_OUT, "--layer", "features.99"], [*IMG_OUT, "--layer", ","], [*IMG_OUT, "--layer", "features.3", "--steps", "0"],
       [*IMG_OUT, "--layer", "features.3", "--size", "0"], [*IMG_OUT, "--layer", "features.3", "--param", "nosuch"]],
    ("accentuate",): [r + ["--target", "tiger"] for r in IMAGE_ROWS]
    + [[*IMG_OUT, "--target", "nosuchclass"], [*IMG_OUT, "--target", "tiger", "--steps", "0"],
       [*IMG_OUT, "--target", "tiger", "--reg-layer", "features.99"], [*IMG_OUT, "--target", "tiger", "--weight", "-1"]],
    ("embed",): [["{missing}", "--out", "{outdir_new}"], ["{dir}", "--out", "{outdir_new}", "--batch-size", "0"],
                 ["{dir}", "--out", "{outdir_new}", "--shard-size", "0"], ["{dir}", "--out", "{outdir_new}", "--dtype", "int8"],
                 ["{dir}", "--out", "{outdir_new}", "--layer", "features.99"], ["{dir}", "--out", "{txt}"],
                 ["samples:x", "--out", "{outdir_new}"], ["{dir}", "--out", "{outdir_new}", "--engine", "nosuch"],
                 ["{dir}", "--out", "{outdir_new}", "--decoder", "nosuch"]],
    ("neighbors",): [["{missing}", "--index", "0"], ["{dir}", "--index", "0"], ["{store}", "--index", "999"], ["{store}", "--index", "-1"],
                     ["{store}", "--index", "0", "--k", "0"], ["{store}", "--index", "0", "--k", "-3"],
                     ["{store}", "--index", "0", "--metric", "nosuch"], ["{store}", "--image", "{missing}"],
                     ["{store}", "--image", "{txt}"], ["{store}", "--index", "0", "-o", "{outdir}"]],
    ("project",): [["{missing}"], ["{store}", "--method", "nosuch"], ["{store}", "--perplexity", "-1"], ["{store}", "-o", "{outdir}"],
                   ["{store}", "--tile", "0", "-o", "{out}"], ["{store}", "--csv", "{txt}/x.csv"]],
    ("export-projector",): [["{missing}", "{outdir_new}"], ["{store}", "{txt}"], ["{store}", "{outdir_new}", "--max-points", "0"]],
    ("similar-why",): [["{missing}", "--index", "0", "-o", "{out}"], ["{store}", "--index", "999", "-o", "{out}"],
                       ["{store}", "--index", "0", "--neighbor", "999", "-o", "{out}"],
                       ["{store}", "--index", "0", "--method", "nosuch", "-o", "{out}"], ["{store}", "--index", "0", "-o", "{outdir}"]],
    ("index",): [["{missing}"], ["{store}", "--kind", "nosuch"], ["{store}", "--metric", "nosuch"], ["{store}", "--target-recall", "2"],
                 ["{store}", "--queries", "0"]],
    ("duplicates",): [["{missing}"], ["{store}", "--threshold", "2"], ["{store}", "--threshold", "nan"]],
    ("words", "neighbors"): [["x", "--vectors", "zh", "--vocab", "{vocab}"], ["x", "--vectors", "{missing}"], ["x", "--vectors", "{txt}"], ["x", "--vocab", "{vocab}", "--topk", "0"],
                             ["x", "--vocab", "{vocab}", "--topk", "-1"], ["", "--vocab", "{vocab}"]],
    ("words", "analogy"): [["a", "b", "c", "--vectors", "{missing}"], ["a", "b", "c", "--vocab", "{vocab}", "--topk", "0"]],
    ("words", "train"): [["{missing}", "--out", "{out_bin}"], ["{corpus}", "--out", "{out_bin}", "--size", "0"],
                         ["{corpus}", "--out", "{out_bin}", "--epochs", "0"], ["{corpus}", "--out", "{out_bin}", "--lang", "xx"],
                         ["{corpus}", "--out", "{outdir}"]],
    ("linear-demo",): [["--x", "1,a"], ["--x", "1,2", "--w", "1,2,3"], ["--eps", "nan"], ["-o", "{outdir}"], ["-o", "{out_txt}"]],
    **{(c,): IMAGE_ROWS + [[*IMG_OUT, "--eps", "3/0"], [*IMG_OUT, "--eps", "-1"], [*IMG_OUT, "--eps", "x/255"],
                           [*IMG_OUT, "--target", "nosuchclass"]] for c in ("fgsm", "pgd")},
    ("fool",): [["{img}", "-o", "{out}"], ["{missing}", "--target", "goldfish", "-o", "{out}"],
                ["{img}", "--target", "nosuchclass", "-o", "{out}"], ["{img}", "--target", "goldfish", "--eps", "3/0", "-o", "{out}"],
                ["{img}", "--target", "goldfish", "--max-steps", "0", "-o", "{out}"],
                ["{img}", "--target", "goldfish", "--confidence", "2", "-o", "{out}"],
                ["{img}", "--target", "goldfish", "-o", "{outdir}"]],
    ("unrecognizable",): [["--target", "nosuchclass", "-o", "{out}"], ["--target", ",", "-o", "{out}"],
                          ["--target", "robin", "--steps", "0", "-o", "{out}"], ["--target", "robin", "-o", "{outdir}"]],
    ("evolve-unrecognizable",): [["--target", "nosuchclass", "-o", "{out}"], ["--target", "starfish", "--size", "0", "-o", "{out}"],
                                 ["--target", "starfish", "--generations", "0", "-o", "{out}"],
                                 ["--target", "starfish", "-o", "{outdir}"]],
    ("mix-weights",): [["--image", "{missing}", "-o", "{out}"], ["--eps", "3/0", "-o", "{out}"], ["--repeats", "0", "-o", "{out}"],
                       ["--target", "nosuchclass", "-o", "{out}"]],
    ("hog-match",): [["{missing}", "{img}", "-o", "{out}"], ["{img}", "{txt}", "-o", "{out}"], ["{img}", "{img}", "--steps", "0", "-o", "{out}"],
                     ["{img}", "{img}", "--size", "0", "-o", "{out}"], ["{img}", "{img}", "-o", "{outdir}"]],
    ("robustness",): [["{missing}"], ["samples", "--eps", "3/0"], ["samples", "--eps", "x"], ["samples", "--n", "0"],
                      ["samples", "--attack", "nosuch"], ["samples", "--size", "0"], ["{dir}", "-o", "{outdir}"]],
    ("texture",): [["nosuchsample", "-o", "{out}"], ["{missing}", "-o", "{out}"], ["{txt}", "-o", "{out}"],
                   ["brick", "--method", "nosuch", "-o", "{out}"], ["brick", "--size", "0", "-o", "{out}"],
                   ["brick", "--size", "-5", "-o", "{out}"], ["brick", "--window", "0", "-o", "{out}"],
                   ["brick", "--window", "-3", "-o", "{out}"], ["brick", "--crop", "-1", "-o", "{out}"],
                   ["brick", "--block", "0", "--method", "quilting", "-o", "{out}"], ["brick", "--levels", "0", "--method", "wei-levoy", "-o", "{out}"],
                   ["brick", "--search", "nosuch", "--method", "wei-levoy", "-o", "{out}"], ["brick", "--epsilon", "-1", "-o", "{out}"],
                   ["brick", "-o", "{outdir}"], ["brick", "-o", "{out_txt}"]],
    ("style",): [["{missing}", "ihc", "-o", "{out}"], ["chelsea", "{missing}", "-o", "{out}"], ["chelsea", "ihc", "--steps", "0", "-o", "{out}"],
                 ["chelsea", "ihc", "--styles-weights", "x", "-o", "{out}"], ["chelsea", "ihc,gravel", "--styles-weights", "1", "-o", "{out}"],
                 ["chelsea", "ihc", "--model", "nosuchnet", "-o", "{out}"], ["chelsea", "ihc", "-o", "{outdir}"],
                 ["chelsea", "ihc", "--size", "0", "-o", "{out}"]],
    ("fast-style", "train"): [["--style", "{missing}", "--out", "{out_st}"], ["--style", "ihc", "--steps", "0", "--out", "{out_st}"],
                              ["--style", "ihc", "--images", "{missing}", "--out", "{out_st}"], ["--style", "ihc", "--out", "{out_txt}"]],
    ("fast-style", "apply"): [["{missing}", "chelsea", "-o", "{out}"], ["ihc", "{missing}", "-o", "{out}"], ["{txt}", "chelsea", "-o", "{out}"],
                              ["ihc", "chelsea", "--size", "-1", "-o", "{out}"], ["ihc", "chelsea", "-o", "{outdir}"]],
    ("fast-style", "arbitrary"): [["{missing}", "chelsea", "-o", "{out}"], ["starry_night", "{missing}", "-o", "{out}"],
                                  ["starry_night", "chelsea", "--strength", "2", "-o", "{out}"],
                                  ["starry_night", "chelsea", "-o", "{outdir}"]],
    ("fast-style", "styles"): [["extra"]],
    ("verify",): [["{missing}"], ["{dir}"]],
    ("words", "evaluate"): [["--analogies", "{missing}"], ["--vectors", "{txt}"], ["--restrict", "0"],
                            ["--analogies", "{corpus}"]],
    ("fast-style", "export"): [["{missing}", "-o", "{out_onnx}"], ["ihc", "-o", "{out}"], ["ihc", "-o", "{outdir_onnx}"]],
    ("serve",): [["--port", "99999"], ["--port", "-1"], ["--port", "0x"], ["--workers", "0"], ["--worker-threads", "0"],
                 ["--store", "{missing}"], ["--model", "nosuchnet"], ["--images", "{missing}"]],
}

def _paths(group, prefix=()):
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            yield from _paths(cmd, (*prefix, name))
        else:
            yield (*prefix, name)


def _command_paths() -> set[tuple]:
    import typer.main
    cli_main._register_all()
    return set(_paths(typer.main.get_command(cli_main.app)))


def test_every_command_has_rows():
    missing = sorted(" ".join(p) for p in _command_paths() - set(TABLE))
    stale = sorted(" ".join(p) for p in set(TABLE) - _command_paths())
    assert not missing, f"commands without bad-input rows in tests/test_cli_fuzz.py: {missing}"
    assert not stale, f"rows for commands that no longer exist: {stale}"


ROWS = [(path, i) for path in TABLE for i in range(len(TABLE[path]))]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz-in")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(root / "img.png")
    (root / "folder").mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / "folder" / f"{i}.png")
    (root / "notes.png").write_text("this is not an image")
    (root / "corpus.txt").write_text("the cat sat on the mat\n" * 20)
    (root / "vocab.txt").write_text("cat\ndog\nmat\n")
    return root


@pytest.fixture(scope="module")
def store(files, tmp_path_factory):
    import convlens
    m = convlens.Model.wrap(__import__("helpers").tiny_convnet(), input_size=32, classes=["a", "b", "c"])
    out = tmp_path_factory.mktemp("fuzz-store") / "s.emb"
    convlens.embed_images(m, files / "folder", out=out, batch_size=2, workers=0, threads=1)
    return out


@pytest.fixture(autouse=True)
def no_server(monkeypatch):
    """`serve` with an accepted input would block: record that it would have started instead."""
    import uvicorn
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)


@pytest.fixture(scope="module", autouse=True)
def cached_models():
    """One model per (name, weights) for the whole table (loading is not what is tested here)."""
    from convlens.cli import common
    real = common.get_model
    common.get_model = functools.lru_cache(maxsize=None)(real)
    yield
    common.get_model = real


@pytest.mark.parametrize("path,i", ROWS, ids=[f"{' '.join(p)}-{i}" for p, i in ROWS])
def test_bad_input_is_one_line(path, i, files, store, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "existing_dir.png").mkdir()
    (out / "existing_dir.onnx").mkdir()
    values = {"img": files / "img.png", "txt": files / "notes.png", "missing": files / "missing.png", "dir": files / "folder",
              "out": out / "o.png", "outdir": out / "existing_dir.png", "outdir_onnx": out / "existing_dir.onnx",
              "out_txt": out / "o.txt", "out_txt_dir": out / "nofolder", "under_file": files / "notes.png" / "o.png",
              "outdir_new": out / "new", "store": store, "corpus": files / "corpus.txt", "vocab": files / "vocab.txt",
              "out_bin": out / "v.bin", "out_st": out / "s.safetensors", "out_onnx": out / "o.onnx"}
    argv = [a.format(**{k: str(v) for k, v in values.items()}) for a in TABLE[path][i]]
    before = {p.name for p in out.iterdir()}
    old = signal.signal(signal.SIGALRM, _accepted)  # a bad value accepted would run the real work
    signal.alarm(60)
    try:
        rc = cli_main.run([*path, *argv])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert rc != 0, f"exit 0 for {argv}: {err}"
    assert "Traceback" not in err
    assert len(lines) == 1, f"{len(lines)} lines on stderr: {err}"
    assert lines[0].startswith("convlens: ")
    assert {p.name for p in out.iterdir()} == before, "an output was left behind"
    assert not any((out / "existing_dir.png").iterdir())
    assert not RAW.match(lines[0]), f"a raw exception, not a message naming the fix: {lines[0]}"


class AcceptedBadInput(BaseException):  # not an Exception: the CLI's handler must not swallow it
    pass


def _accepted(*_):
    raise AcceptedBadInput("the bad value was accepted: the command was still working after 60 s")


RAW = re.compile(r"convlens: error: [A-Z]\w*(Error|Exception|Interrupt)\b")


# --- the CLI without torch (issue 19.17) -------------------------------------------------------------
NO_TORCH = r"""
import sys
from convlens.cli.main import run
from convlens.cli.spec import load_fresh_spec
assert load_fresh_spec() is not None, "data/cli_commands.json is stale"
def paths(cs, prefix=()):
    for c in cs:
        if c["kind"] == "group":
            yield (*prefix, c["name"])
            yield from paths(c["commands"], (*prefix, c["name"]))
        else:
            yield (*prefix, c["name"])
calls = [["--help"], ["samples"], ["predict"], ["classviz", "--steps", "x"], ["nosuchcommand"],
         *[[*p, "--help"] for p in paths(load_fresh_spec()["commands"])]]
for argv in calls:
    rc = run(argv)
    assert "torch" not in sys.modules, f"convlens {' '.join(argv)} imported torch"
    print(rc, " ".join(argv))
"""


def test_help_usage_errors_and_samples_do_not_import_torch(tmp_path):
    import os
    import subprocess
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    r = subprocess.run([sys.executable, "-c", NO_TORCH], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    codes = dict(line.split(" ", 1)[::-1] for line in r.stdout.splitlines() if line[:1].isdigit())
    assert codes["--help"] == "0" and codes["samples"] == "0" and codes["classviz --help"] == "0"
    assert codes["predict"] == "2" and codes["classviz --steps x"] == "2" and codes["nosuchcommand"] == "2"
    assert "chelsea" in r.stdout and "starry_night" in r.stdout  # `samples` listed the names
    assert len(codes) == 5 + len(_command_paths()) + 2  # every command's --help, and the two groups'


def test_saved_command_description_is_current():
    """data/cli_commands.json matches the live commands: regenerate with `python -m convlens.cli.spec`."""
    import json

    from convlens.cli import spec
    assert json.loads(spec.SPEC_FILE.read_text()) == json.loads(json.dumps(spec.build_spec())), \
        "stale data/cli_commands.json: run `python -m convlens.cli.spec`"


def test_commands_from_the_description_have_the_real_help(capsys):
    """Each command rebuilt from the description prints the same --help as the real one."""
    import importlib

    import typer
    import typer.main

    from convlens.cli import spec

    def helps(app):
        app.callback()(lambda: None)
        group = typer.main.get_command(app)
        out = {}
        for path in sorted(_paths(group)) + [("fast-style",), ("words",)]:
            group.main(args=[*path, "--help"], standalone_mode=False, prog_name="convlens")
            out[path] = capsys.readouterr().out
        return out
    stub, real = typer.Typer(), typer.Typer()
    assert spec.register_stubs(stub)
    for name in spec.CLI_MODULES:
        importlib.import_module(f"convlens.cli.{name}").register(real)
    a, b = helps(stub), helps(real)
    assert a.keys() == b.keys() and len(a) > 40
    for path in a:
        assert a[path] == b[path], path
        assert "Usage: convlens" in a[path]
