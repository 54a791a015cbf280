"""`mpyml deploy` to the virtual board: package + engine + model, inference on the board, incremental
and interrupted copies, boards without a native module, app/main.py, and the mip package.json."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from conftest import shared_path
from mpyml import deploy as dep
from mpyml import paths
from mpyml.board import MPY_ARCHS
from mpyml.remote import Board, BoardInfo, RemoteError, host_hash
from mpyml.unix_port import run_model

if TYPE_CHECKING:
    from virtual_board import VirtualBoard

pytest_plugins = ["virtual_board"]   # fixtures: virtual_board, board_factory

REPO = paths.REPO
MODELS = ("models", "mlperf_tiny")


def packed(name: str, tmp_path: Path, dest_name: str | None = None) -> Path:
    import mpyml
    src = shared_path(*MODELS, name)
    out = tmp_path / "host" / (dest_name or Path(name).with_suffix(".mpk").name)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(mpyml.pack(src.read_bytes()))
    return out


def summary(r: subprocess.CompletedProcess) -> dict:
    assert r.returncode == 0, f"deploy failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout)


def infer_on_board(b: VirtualBoard, model: str, x: np.ndarray) -> tuple[bytes, bytes]:
    """invoke() through the buffers and predict(), on the board, through mpremote."""
    out = b.exec(
        "import mpyml, binascii\n"
        f"m = mpyml.load({model!r})\n"
        f"x = binascii.unhexlify({x.tobytes().hex()!r})\n"
        "m.input.buffer[:] = x\n"
        "m.invoke()\n"
        "print(binascii.hexlify(bytes(m.output.buffer)).decode())\n"
        "print(binascii.hexlify(m.predict(x)).decode())\n", timeout=120)
    a, b2 = out.split()
    return bytes.fromhex(a), bytes.fromhex(b2)


def host_expectation(mpk: Path, x: np.ndarray) -> bytes:
    return b"".join(o.tobytes() for o in run_model(mpk.read_bytes(), [x]).outputs)


# ------------------------------------------------------------------------------ acceptance
def test_deploy_package_engine_model_then_infer(virtual_board: VirtualBoard, natmod_x64: Path,
                                                tmp_path: Path) -> None:
    b = virtual_board
    mpk = packed("ad01_int8.tflite", tmp_path)
    t0 = time.monotonic()
    first = summary(b.deploy(str(mpk), "--json"))
    t_first = time.monotonic() - t0
    assert first["board"]["arch"] == "x64" and first["board"]["abi"] == "6.3" and first["engine"] == "native"
    assert "models/ad01_int8.mpk" in first["copied"] and "lib/mpyml_engine.mpy" in first["copied"]
    assert any(p.startswith("lib/mpyml/") and p.endswith(".mpy") for p in first["copied"])
    assert (b.dir / "lib" / "mpyml_engine.mpy").read_bytes() == natmod_x64.read_bytes()
    assert (b.dir / "models" / "ad01_int8.mpk").read_bytes() == mpk.read_bytes()

    x = np.random.default_rng(1).integers(-128, 128, size=(1, 640), dtype=np.int8)
    via_buffers, via_predict = infer_on_board(b, "models/ad01_int8.mpk", x)
    want = host_expectation(mpk, x)
    assert len(want) == 640
    assert via_buffers == want and via_predict == want

    # second deploy, nothing changed: nothing copied
    t0 = time.monotonic()
    second = summary(b.deploy(str(mpk), "--json"))
    t_second = time.monotonic() - t0
    assert second["copied"] == [] and second["bytes_copied"] == 0 and second["deleted"] == []
    assert sorted(second["unchanged"]) == sorted(first["copied"])
    print(f"\ndeploy timings: first {t_first:.2f} s ({first['bytes_copied']} B copied), "
          f"second {t_second:.2f} s ({second['bytes_copied']} B copied)")


def test_interrupted_copy_keeps_previous_model(virtual_board: VirtualBoard, natmod_x64: Path,
                                               tmp_path: Path) -> None:
    b = virtual_board
    old = packed("kws_ref_model.tflite", tmp_path / "old", "m.mpk")        # 31 KB
    new = packed("ad01_int8.tflite", tmp_path / "new", "m.mpk")            # 273 KB: ~67 chunks
    summary(b.deploy(str(old), "--json"))
    # the deploy process is SIGKILLed after the 3rd chunk of the model (no cleanup code runs)
    r = b.deploy(str(new), env={"MPYML_DEPLOY_KILL_AFTER_CHUNKS": "3"})
    assert r.returncode == -signal.SIGKILL, r.stdout + r.stderr
    board_file = b.dir / "models" / "m.mpk"
    part = b.dir / "models" / "m.mpk.part"
    assert board_file.read_bytes() == old.read_bytes()                    # previous model intact
    assert part.exists() and 0 < part.stat().st_size < new.stat().st_size  # the copy was under way
    x = np.random.default_rng(2).integers(-128, 128, size=(1, 49, 10, 1), dtype=np.int8)
    via_buffers, via_predict = infer_on_board(b, "models/m.mpk", x)       # and loadable
    assert via_buffers == via_predict == host_expectation(old, x)
    # the next deploy cleans up and completes
    again = summary(b.deploy(str(new), "--json"))
    assert again["copied"] == ["models/m.mpk"]
    assert board_file.read_bytes() == new.read_bytes() and not part.exists()


def test_kill_at_a_random_moment_of_the_copy(virtual_board: VirtualBoard, natmod_x64: Path,
                                             tmp_path: Path) -> None:
    """A real kill from outside, wherever the transfer is (possibly inside a raw-paste command)."""
    b = virtual_board
    old = packed("kws_ref_model.tflite", tmp_path / "old", "m.mpk")
    new = packed("ad01_int8.tflite", tmp_path / "new", "m.mpk")
    summary(b.deploy(str(old), "--json"))
    part = b.dir / "models" / "m.mpk.part"
    p = subprocess.Popen([sys.executable, "-m", "mpyml.cli", "deploy", "--port", b.tty, str(new)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and p.poll() is None:
            if part.exists() and part.stat().st_size > 0:
                time.sleep(0.015)
                break
            time.sleep(0.002)
    finally:
        p.kill()
        p.wait(timeout=30)
    if p.returncode == 0:
        pytest.fail("the deploy finished before it could be killed")
    assert (b.dir / "models" / "m.mpk").read_bytes() == old.read_bytes()
    assert b.exec("import mpyml; print(mpyml.load('models/m.mpk').n_ops)").strip() == "13"
    summary(b.deploy(str(new), "--json"))
    assert (b.dir / "models" / "m.mpk").read_bytes() == new.read_bytes() and not part.exists()


# ------------------------------------------------------------------------------ engine selection
def test_no_native_module_for_the_boards_arch(board_factory, tmp_path: Path) -> None:
    b = board_factory("esp", arch_override="xtensawin")
    has_viper = (paths.DEVICE_DIR / "mpyml" / "viper_engine.py").is_file()
    # nothing provides an engine (the package, which may carry the viper fallback, is not deployed)
    r = b.deploy("--no-package")
    assert r.returncode == dep.EXIT_NO_ENGINE, r.stdout + r.stderr
    msg = r.stderr
    assert "no mpyml engine for architecture xtensawin (.mpy ABI 6.3" in msg
    assert "build/natmod/xtensawin/mpyml_engine.mpy: absent" in msg and "--no-engine" in msg
    assert "viper" in msg and "make natmods" in msg
    assert not (b.dir / "lib").exists()                     # nothing half-done
    # the whole deploy: falls back to the package's viper engine if it has one, else fails the same way
    r = b.deploy()
    if has_viper:
        assert r.returncode == 0, r.stdout + r.stderr
        assert "no native module for xtensawin (.mpy ABI 6.3): mpyml will use" in r.stdout and "viper" in r.stdout
        viper = (b.dir / "lib" / "mpyml" / "viper_engine.mpy").read_bytes()
        # compiled for the board: the .mpy header's arch bits say xtensawin (ESP32 machine code inside)
        assert viper[0] == ord("M") and viper[1] == 6 and viper[2] >> 2 == MPY_ARCHS.index("xtensawin")
    else:
        assert r.returncode == dep.EXIT_NO_ENGINE and "xtensawin" in r.stderr
    assert not (b.dir / "lib" / "mpyml_engine.mpy").exists()
    # --no-engine deploys the rest
    ok = b.deploy("--no-engine")
    assert ok.returncode == 0, ok.stderr
    assert (b.dir / "lib" / "mpyml" / "__init__.mpy").exists() and not (b.dir / "lib" / "mpyml_engine.mpy").exists()


def _fake_engine(arch: str, sub: int = 3, ver: int = 6) -> bytes:
    return bytes([ord("M"), ver, sub | (MPY_ARCHS.index(arch) << 2), 31]) + b"\0" * 60


def test_engine_path_and_fallback_plug_in(board_factory, tmp_path: Path, monkeypatch) -> None:
    b = board_factory("esp", arch_override="xtensawin")
    # a per-arch native build found on $MPYML_ENGINE_PATH
    extra = tmp_path / "engines"
    (extra / "xtensawin").mkdir(parents=True)
    (extra / "xtensawin" / "mpyml_engine.mpy").write_bytes(_fake_engine("xtensawin"))
    (tmp_path / "wrong" / "xtensawin").mkdir(parents=True)
    (tmp_path / "wrong" / "xtensawin" / "mpyml_engine.mpy").write_bytes(_fake_engine("xtensawin", sub=2))
    env_path = os.pathsep.join([str(tmp_path / "wrong"), str(extra)])
    r = b.deploy("--json", "--no-package", env={"MPYML_ENGINE_PATH": env_path})
    s = summary(r)
    assert s["engine"] == "native" and s["copied"] == ["lib/mpyml_engine.mpy"]
    assert (b.dir / "lib" / "mpyml_engine.mpy").read_bytes() == _fake_engine("xtensawin")
    assert "unusable, native code for ABI 6.2, the board is 6.3" in r.stderr
    # a fallback provider plugged into ENGINE_PROVIDERS (in process)
    fb = tmp_path / "fallback.mpy"
    fb.write_bytes(_fake_engine("xtensawin")[:2] + bytes([0, 31]) + b"fallback")   # bytecode only
    monkeypatch.setattr(dep, "ENGINE_PROVIDERS", [lambda arch: [(fb, "fallback engine")]])
    with Board(b.tty) as board:
        choice = dep.choose_engine(board.info, board.info.arch, [])
    assert choice.kind == "fallback" and choice.path == fb


def test_mpy_compatibility_rules() -> None:
    def info(mpy: int | None) -> BoardInfo:
        return BoardInfo("micropython", (1, 24, 1), mpy, "esp32", "", 100_000, 0, 1_000_000, 2_000_000, "/")

    esp32 = info(6 | (3 << 8) | (10 << 10))
    assert (esp32.arch, esp32.abi, esp32.mpy_version) == ("xtensawin", "6.3", 6)
    assert info(2822).arch == "x64" and info(6 | (2 << 8) | (4 << 10)).arch == "armv6m"
    assert info(None).abi == "?" and info(6 | (3 << 8)).arch == ""
    assert dep.mpy_incompatibility(_fake_engine("xtensawin"), esp32) is None
    assert "x64" in dep.mpy_incompatibility(_fake_engine("x64"), esp32)
    assert "6.2" in dep.mpy_incompatibility(_fake_engine("xtensawin", sub=2), esp32)
    assert "v5" in dep.mpy_incompatibility(_fake_engine("xtensawin", ver=5), esp32)
    bytecode = bytes([ord("M"), 6, 0, 31])
    assert dep.mpy_incompatibility(bytecode, info(6 | (1 << 8) | (10 << 10))) is None   # any 6.x loads it
    no_native = info(6 | (3 << 8))
    choice = dep.choose_engine(no_native, no_native.arch, [])
    assert choice.kind == "none"
    assert "cannot load native modules" in dep.no_engine_message(no_native, "", choice)
    assert dep.choose_engine(no_native, "", ["viper_engine.py"]).kind == "package-viper"


# ------------------------------------------------------------------------------ plan, app, hygiene
def test_dry_run_prints_the_plan_and_changes_nothing(virtual_board: VirtualBoard, natmod_x64: Path,
                                                     tmp_path: Path) -> None:
    mpk = packed("kws_ref_model.tflite", tmp_path)
    r = virtual_board.deploy(str(mpk), "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "copy   models/kws_ref_model.mpk" in r.stdout and "copy   lib/mpyml_engine.mpy" in r.stdout
    assert "dry run: would copy" in r.stdout and "native arch  x64" in r.stdout
    assert list(virtual_board.dir.iterdir()) == []
    r = subprocess.run([sys.executable, "-m", "mpyml.cli", "deploy", "--port", f"virtual:{virtual_board.dir}",
                        "--dry-run", "--no-engine"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and f"board {virtual_board.tty}" in r.stdout, r.stderr
    # without a board: --arch gives the plan
    r = subprocess.run([sys.executable, "-m", "mpyml.cli", "deploy", "--dry-run", "--arch", "armv6m", str(mpk)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "(mpy-cross -march=armv6m)" in r.stdout and "native module armv6m" in r.stdout


def test_app_and_main(virtual_board: VirtualBoard, natmod_x64: Path, tmp_path: Path) -> None:
    b = virtual_board
    app = tmp_path / "app"
    (app / "data").mkdir(parents=True)
    (app / "helper.py").write_text("def answer():\n    return 42\n")
    (app / "data" / "labels.txt").write_text("normal\nanomaly\n")
    (app / "main.py").write_text("import helper, mpyml_engine\n"
                                 "f = open('ran.txt', 'w'); f.write(str(helper.answer())); f.close()\n")
    (app / "__pycache__").mkdir()
    (app / "__pycache__" / "helper.cpython-311.pyc").write_bytes(b"x")
    r = b.deploy("--app", str(app), "--no-package")
    assert r.returncode == 0, r.stderr
    assert "main.py not installed: pass --main" in r.stdout
    assert (b.dir / "helper.py").exists() and (b.dir / "data" / "labels.txt").exists()
    assert not (b.dir / "main.py").exists() and not (b.dir / "__pycache__").exists()
    r = b.deploy("--app", str(app), "--main", "--no-package", "--json")
    s = summary(r)
    assert s["copied"] == ["main.py"]
    b.soft_reboot(wait_for=b.dir / "ran.txt")
    assert (b.dir / "ran.txt").read_text() == "42"          # main.py ran at boot
    r = b.deploy("--main")
    assert r.returncode == 2 and "--main needs --app" in r.stderr


def test_stale_and_shadowing_files_are_removed(virtual_board: VirtualBoard, natmod_x64: Path) -> None:
    b = virtual_board
    (b.dir / "lib" / "mpyml").mkdir(parents=True)
    (b.dir / "lib" / "mpyml" / "__init__.py").write_text("raise ImportError('old source')\n")
    (b.dir / "lib" / "mpyml" / "gone.mpy").write_bytes(b"M\x06\x00\x1f")
    (b.dir / "lib" / "mpyml_engine.py").write_text("raise ImportError('shadow')\n")
    (b.dir / "lib" / "other.py").write_text("X = 1\n")                      # not ours: kept
    s = summary(b.deploy("--json"))
    assert sorted(s["deleted"]) == ["lib/mpyml/__init__.py", "lib/mpyml/gone.mpy", "lib/mpyml_engine.py"]
    assert (b.dir / "lib" / "other.py").exists()
    assert b.exec("import mpyml, mpyml_engine; print(mpyml.board_arch())").strip() == "('x64', '6.3')"


def test_write_is_verified_and_fat_rename_is_handled(virtual_board: VirtualBoard,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    b = virtual_board
    (b.dir / "keep.bin").write_bytes(b"old")
    with Board(b.tty) as board:
        # a board whose flash returns other bytes than were sent: the write fails, the old file stays
        monkeypatch.setattr("mpyml.remote.host_hash", lambda data, alg: "0" * 64)
        with pytest.raises(RemoteError, match="verification failed"):
            board.write_file("keep.bin", b"new contents")
        monkeypatch.setattr("mpyml.remote.host_hash", host_hash)
        assert (b.dir / "keep.bin").read_bytes() == b"old" and not (b.dir / "keep.bin.part").exists()
        # FAT (stm32, esp8266): rename does not replace an existing file; emulate it on the board
        board.exec("_mp_os = os\n"
                   "class _FatOS:\n"
                   "    def __getattr__(self, n): return getattr(_mp_os, n)\n"
                   "    def rename(self, a, b):\n"
                   "        if _mp_stat(b) is not None: raise OSError(17)\n"
                   "        _mp_os.rename(a, b)\n"
                   "os = _FatOS()\n")
        board.write_file("keep.bin", b"new contents" * 100)
        assert (b.dir / "keep.bin").read_bytes() == b"new contents" * 100
        assert sorted(p.name for p in b.dir.iterdir()) == ["keep.bin"]
        # interrupted between the two renames: recover() puts the old file back
        (b.dir / "keep.bin").rename(b.dir / "keep.bin.old")
        (b.dir / "keep.bin.part").write_bytes(b"half")
        assert sorted(board.recover(["keep.bin"])) == ["keep.bin.part", "restored keep.bin"]
        assert sorted(p.name for p in b.dir.iterdir()) == ["keep.bin"]


def test_chunk_size_follows_the_heap(board_factory) -> None:
    small = board_factory("small", heapsize="64K")
    with Board(small.tty) as board:
        n = board.chunk_size()
        assert 384 <= n <= 64 * 1024 // 24 and n % 3 == 0
        data = bytes(range(256)) * 40
        board.write_file("x.bin", data)
    assert (small.dir / "x.bin").read_bytes() == data


def test_deploy_errors_are_clear(virtual_board: VirtualBoard, tmp_path: Path) -> None:
    bad = tmp_path / "bad.mpk"
    bad.write_bytes(b"not a model")
    r = virtual_board.deploy(str(bad), "--no-engine")
    assert r.returncode == 2 and "not an mpyml model" in r.stderr
    r = subprocess.run([sys.executable, "-m", "mpyml.cli", "deploy", "--port", str(tmp_path / "nope")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "cannot open" in r.stderr
    r = subprocess.run([sys.executable, "-m", "mpyml.cli", "deploy", "--port", "virtual:" + str(tmp_path / "x")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "mpyml board start" in r.stderr


# ------------------------------------------------------------------------------ mip package.json
def test_package_json_lists_every_device_file() -> None:
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import make_package_json as mk
    finally:
        sys.path.pop(0)
    pkg = json.loads((REPO / "device" / "package.json").read_text())
    on_disk = sorted(p.relative_to(REPO / "device").as_posix() for p in (REPO / "device" / "mpyml").rglob("*.py")
                     if "__pycache__" not in p.parts)
    assert sorted(u[0] for u in pkg["urls"]) == on_disk, \
        "device/package.json is out of date: run `python tools/make_package_json.py`"
    assert all(src == dst for src, dst in pkg["urls"])      # relative URLs: same layout
    assert (REPO / "device" / "package.json").read_text() == mk.render(mk.source_package()), \
        "device/package.json is out of date: run `python tools/make_package_json.py`"
    assert pkg["version"] == mk.device_version() and "6.3" in pkg["mpy"]


def test_mip_install_per_arch_package(virtual_board: VirtualBoard, natmod_x64: Path, tmp_path: Path) -> None:
    dist = tmp_path / "mip"
    r = subprocess.run([sys.executable, str(REPO / "tools" / "make_package_json.py"), "--dist", str(dist),
                        "--arch", "x64"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    top = json.loads((dist / "package.json").read_text())
    assert top["arch"] == ["x64"] and all(u[1].startswith("{ARCH}_{MPY}/") for u in top["urls"])
    pkg = json.loads((dist / "x64_6.3" / "package.json").read_text())
    assert ["mpyml_engine.mpy", "mpyml_engine.mpy"] in pkg["urls"]
    for _, url in pkg["urls"]:
        assert (dist / "x64_6.3" / url).is_file()
    virtual_board.mpremote("mip", "install", str(dist / "x64_6.3" / "package.json"), timeout=120)
    out = virtual_board.exec("import mpyml, mpyml_engine; print(mpyml.board_arch(), mpyml.__file__)")
    assert "('x64', '6.3')" in out and "/lib/mpyml/__init__.mpy" in out


def test_cli_is_registered() -> None:
    from mpyml import cli
    ap = cli.build_parser()
    sub = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction))
    assert {"deploy", "board", "flash-firmware"} <= set(sub.choices)


def test_hash_and_encoding_fallbacks(virtual_board: VirtualBoard) -> None:
    """Boards without hashlib (crc32 from binascii, else adler32 in plain Python) or without base64."""
    data = bytes(range(256)) * 21 + b"tail"
    with Board(virtual_board.tty) as board:
        for alg, setup in (("crc32", "from binascii import crc32 as _mp_crc\n"), ("adler32", "")):
            board.exec(setup + f"_mp_alg = {alg!r}")
            board.info.hash = alg
            board.write_file(f"{alg}.bin", data)
            assert board.file_infos([(f"{alg}.bin", len(data))]) == [(len(data), host_hash(data, alg))]
        board.exec("_mp_b64d = None")
        board.info.b64 = False
        board.write_file("raw.bin", data)
    for name in ("crc32.bin", "adler32.bin", "raw.bin"):
        assert (virtual_board.dir / name).read_bytes() == data


def test_no_reset_keeps_the_running_program(virtual_board: VirtualBoard, natmod_x64: Path, tmp_path: Path) -> None:
    """--no-reset (mpremote's `resume`) deploys without soft-resetting: state the running program set survives;
    a plain deploy resets it away."""
    b = virtual_board
    mpk = packed("ad01_int8.tflite", tmp_path)
    b.mpremote("resume", "exec", "MPYML_MARK = 1234")
    r = b.deploy(str(mpk), "--no-reset")
    assert r.returncode == 0, r.stdout + r.stderr
    out = b.mpremote("resume", "exec", "print(globals().get('MPYML_MARK'))").stdout
    assert "1234" in out, out
    assert (b.dir / "models" / "ad01_int8.mpk").read_bytes() == mpk.read_bytes()
    r = b.deploy(str(mpk))
    assert r.returncode == 0, r.stdout + r.stderr
    out = b.mpremote("resume", "exec", "print(globals().get('MPYML_MARK'))").stdout
    assert "None" in out, out
