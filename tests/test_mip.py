"""`mip install` of the per-architecture trees (tools/make_package_json.py --dist) by MicroPython itself: the unix
port's own `mip` fetches them from a local `python -m http.server` on 127.0.0.1, then the installed package (and
nothing from the checkout) loads and runs a model on the C and the viper engine, bit-exact with tflite-micro.
Every other architecture's tree is fetched too and checked file by file. About 5 s.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mpyml import paths
from mpyml.packer import pack
from tflite_build import conv2d_model, run_tflm

REPO = paths.REPO
MPY = "6.3"
ARCHS = ("x64", "armv6m", "armv7m", "armv7emsp", "armv7emdp")


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("www") / "mpyml"
    r = subprocess.run([sys.executable, str(REPO / "tools" / "make_package_json.py"), "--dist", str(out),
                        *[f"--arch={a}" for a in ARCHS]], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(json.loads((out / "package.json").read_text())["arch"]) == sorted(ARCHS)
    return out


@pytest.fixture(scope="module")
def server(dist: Path) -> Iterator[str]:
    """`python -m http.server` on 127.0.0.1 (a free port) serving the directory above the tree; its base URL."""
    proc = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
                             "--directory", str(dist.parent)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()        # "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
        m = re.search(r"port (\d+)", line)
        assert m, f"http.server said {line!r}"
        yield f"http://127.0.0.1:{m.group(1)}/{dist.name}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _mip_install(url: str, target: Path, cwd: Path) -> subprocess.CompletedProcess:
    code = f"import mip\nmip.install({url!r}, target={str(target)!r})\n"
    # MICROPYPATH without the checkout's device/ and build/: only the frozen modules (mip) and the target
    return subprocess.run([paths.micropython_exe(), "-c", code], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={"MICROPYPATH": ".frozen", "PATH": "/usr/bin:/bin"})


def test_mip_install_x64_then_run_a_model(server: str, dist: Path, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    r = _mip_install(f"{server}/x64_{MPY}/package.json", lib, tmp_path)
    assert r.returncode == 0 and "Done" in r.stdout, r.stdout + r.stderr
    pkg = json.loads((dist / f"x64_{MPY}" / "package.json").read_text())
    for dest, _ in pkg["urls"]:
        assert (lib / dest).read_bytes() == (dist / f"x64_{MPY}" / dest).read_bytes(), dest
    assert (lib / "mpyml_engine.mpy").read_bytes() == paths.natmod_path("x64").read_bytes()
    assert not list(lib.rglob("*.py")), "the per-arch tree installs compiled .mpy only"

    rng = np.random.default_rng(5)
    model = conv2d_model(rng, in_shape=(1, 6, 5, 4), out_ch=3, fused="RELU")
    (tmp_path / "m.mpk").write_bytes(pack(model))
    x = rng.integers(-128, 128, (1, 6, 5, 4), dtype=np.int8)
    (ref,) = run_tflm(model, [x])
    want = np.asarray(ref, dtype=np.int8).reshape(-1).view(np.uint8).tolist()
    code = ("import sys, mpyml\n"
            "x = bytes(" + repr(list(x.reshape(-1).view(np.uint8).tolist())) + ")\n"
            "for eng in ('c', 'viper'):\n"
            "    m = mpyml.load('m.mpk', engine=eng)\n"
            "    print('OUT', eng, m.engine, list(m.predict(x)))\n"
            "print('FILE', mpyml.__file__)\n")
    r = subprocess.run([paths.micropython_exe(), "-X", "heapsize=4M", "-c", code], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120, env={"MICROPYPATH": f"{lib}:.frozen"})
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert f"FILE {lib}/mpyml/__init__.mpy" in lines
    assert f"OUT c mpyml_engine {want}" in lines
    assert f"OUT viper mpyml.viper_engine {want}" in lines


@pytest.mark.parametrize("arch", [a for a in ARCHS if a != "x64"])
def test_mip_fetches_every_file_of_other_archs(server: str, dist: Path, tmp_path: Path, arch: str) -> None:
    """A board of another architecture gets its own engine and package build (the unix port only copies them)."""
    lib = tmp_path / "lib"
    r = _mip_install(f"{server}/{arch}_{MPY}/package.json", lib, tmp_path)
    assert r.returncode == 0 and "Done" in r.stdout, r.stdout + r.stderr
    pkg = json.loads((dist / f"{arch}_{MPY}" / "package.json").read_text())
    assert pkg["arch"] == arch and len(pkg["urls"]) >= 20
    got = sorted(p.relative_to(lib).as_posix() for p in lib.rglob("*") if p.is_file())
    assert got == sorted(u[0] for u in pkg["urls"])
    for dest in got:
        assert (lib / dest).read_bytes() == (dist / f"{arch}_{MPY}" / dest).read_bytes(), dest
    assert (lib / "mpyml_engine.mpy").read_bytes() == paths.natmod_path(arch).read_bytes()
    viper = lib / "mpyml" / "viper_engine.mpy"
    assert viper.read_bytes() == (paths.VIPER_DIR / arch / "mpyml" / "viper_engine.mpy").read_bytes()


def test_mip_reports_a_missing_package(server: str, tmp_path: Path) -> None:
    """A wrong URL (an architecture with no tree) is reported by mip (which still exits 0), nothing installed."""
    r = _mip_install(f"{server}/nosucharch_{MPY}/package.json", tmp_path / "lib", tmp_path)
    assert f"Package not found: {server}/nosucharch_{MPY}/package.json" in r.stdout, r.stdout + r.stderr
    assert not (tmp_path / "lib" / "mpyml_engine.mpy").exists()
