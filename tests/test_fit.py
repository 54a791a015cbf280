"""`mpyml fit` (host/mpyml/fit.py, phinet.py, fit_boards.py): the predictor against the real pipeline, the
search inside a budget, the too-small error, the board table. About 40 s (three real conversions)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import skip_or_fail
from mpyml import cli, fit, phinet
from mpyml.fit_boards import BOARDS, boards_markdown
from mpyml.phinet import Arch

ROOT = Path(__file__).resolve().parents[1]


def _tf_or_skip() -> None:
    try:
        import tensorflow  # noqa: F401
    except ImportError as e:
        skip_or_fail(f"TensorFlow not installed ({e}): mpyml fit converts with it")


def test_layers_follow_phinet_rules() -> None:
    """Widths int(f*alpha), expansions linear t0 -> beta*t0, stride 2 at blocks 2, 4 and the downsampling
    blocks, shortcuts only where shapes match; a 1-D window keeps its size-1 axis."""
    a = Arch((96, 96, 1), 2, 0.5, 2.0, 4.0, 7)
    ly = phinet.layers(a)
    assert ly[1].out_shape == (48, 48, 24) and ly[0].stride == (2, 2)
    expand = [x for x in ly if x.kind == "conv" and x.relu6 and x.block >= 2]
    ins = {x.block: x.in_shape[2] for x in expand}
    outs = {x.block: x.out_shape[2] for x in expand}
    for x in expand:
        t = phinet.expansion(4.0, 2.0, x.block - 1, 7)
        assert outs[x.block] == round(ins[x.block] * t)
    assert phinet.expansion(4.0, 2.0, 7, 7) == 8.0 and phinet.expansion(4.0, 2.0, 0, 7) == 4.0
    strides = {x.block for x in ly if x.kind == "dw" and x.stride == (2, 2)}
    assert strides == {0, 2, 4, 5, 7}
    for x in ly:
        if x.kind == "add":
            assert ly[x.skip_from].in_shape == x.out_shape
    assert ly[-3].kind == "mean" and ly[-3].in_shape[:2] == (3, 3) and ly[-1].out_shape == (1, 1, 2)
    imu = phinet.layers(Arch((128, 1, 6), 4, 0.5, 1.0, 2.0, 5))
    assert all(x.kernel[1] == 1 and x.stride[1] == 1 and x.out_shape[1] == 1 for x in imu)


def test_predictor_matches_the_packer() -> None:
    """One real conversion: the op list is the converter's, MACs and arena are the packer's, file and engine
    context are predicted from above within 2%; the context equals the host library's mpyml_ctx_size."""
    _tf_or_skip()
    a = Arch((32, 32, 3), 10, 0.5, 1.5, 3.0, 6)
    p = fit.real_pack(a)
    pred = fit.Predictor().predict(a)
    from mpyml.inspect_model import inspect_model
    info = inspect_model(p.mpk)
    kinds = {"conv": "CONV_2D", "dw": "DEPTHWISE_CONV_2D", "add": "ADD", "mean": "MEAN",
             "fc": "FULLY_CONNECTED", "softmax": "SOFTMAX"}
    assert [x["op"].removesuffix("_INPLACE") for x in info["layers"]] == [kinds[x.kind] for x in phinet.layers(a)]
    assert pred.macs == p.figures.macs
    assert p.figures.arena <= pred.arena <= p.figures.arena * 1.05
    for k in ("file", "ctx"):
        real, guess = getattr(p.figures, k), getattr(pred, k)
        assert real <= guess <= real * 1.02 + 64, (k, real, guess)
    assert p.figures.file == len(p.mpk) == info["file_bytes"]
    try:
        from mpyml import hostlib
        host_ctx = hostlib.ctx_size(p.mpk)
    except OSError as e:
        skip_or_fail(f"host library not loadable ({e}): `make hostlib`")
    assert fit.ctx_bytes(p.mpk) == host_ctx
    assert fit.ctx_bytes(p.mpk, "viper") == host_ctx - fit._a8(fit.CTX_STRUCT_BYTES) + fit.VIPER_CTX_BYTES


def test_fit_24k_64k_2m(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's small budget on 96x96x1: the packed model is inside every budget and fills at least 60% of
    one; the written .keras is the measured model (re-converted: the same figures)."""
    _tf_or_skip()
    out = tmp_path / "m.keras"
    rc = cli.main(["fit", "--ram", "24576", "--flash", "65536", "--macs", "2000000", "--input", "96x96x1",
                   "--classes", "2", "-o", str(out), "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    packed, budget = res["packed"], res["budget"]
    assert packed["ram"] == packed["arena"] + packed["ctx"]
    for k in ("ram", "flash", "macs"):
        assert packed[k] <= budget[k], k
        assert res["predicted"][k] > 0
    assert max(res["fraction"].values()) >= 0.6
    assert 1 <= len(res["real_conversions"]) <= 4
    import keras
    model = keras.models.load_model(out)
    assert tuple(model.input_shape[1:]) == (96, 96, 1) and tuple(model.output_shape[1:]) == (2,)
    a = Arch(**{**res["arch"], "input_shape": tuple(res["arch"]["input_shape"]),
                "downsampling": tuple(res["arch"]["downsampling"])})
    again = fit.packed_figures(_pack_keras(model))
    assert again.budget_view(False)["ram"] == packed["ram"] and again.file == packed["file"]
    assert len(model.layers) == len(phinet.keras_model(a).layers)


def _pack_keras(model: object) -> bytes:
    import numpy as np

    from mpyml.convert import load_model, quantized_tflite
    from mpyml.packer import pack
    rnd = phinet.randomized_copy(model)
    calib = np.random.default_rng(0).random((8, 96, 96, 1), dtype=np.float32)
    return pack(quantized_tflite(load_model(rnd), calib, io="int8"))


def test_budget_too_small_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Less RAM than the 96x96x1 input itself: exit 2, one line naming the smallest PhiNet's RAM."""
    _tf_or_skip()
    out = tmp_path / "m.keras"
    rc = cli.main(["fit", "--ram", "8K", "--flash", "64K", "--macs", "2M", "--input", "96x96x1", "--classes", "2",
                   "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and not out.exists()
    assert err[-1].startswith("mpyml fit: budget too small for any PhiNet on 96x96x1")
    m = re.search(r"needs RAM ([\d,]+) B \(budget 8,192\)", err[-1])
    assert m and int(m.group(1).replace(",", "")) > 9216        # the input alone is 9,216 B
    assert "Traceback" not in "\n".join(err)


@pytest.mark.parametrize("argv, msg", [
    (["--board", "esp33", "--input", "96x96x1", "--classes", "2"], "unknown board"),
    (["--ram", "64K", "--input", "96x96x1", "--classes", "2"], "missing --flash, --macs"),
    (["--board", "esp32", "--input", "96x96", "--classes", "2", "-o", "x.h5"], "name it MODEL.keras"),
    (["--board", "esp32", "--input", "9x9x9x9", "--classes", "2"], "--input"),
    (["--ram", "lots", "--flash", "1", "--macs", "1", "--input", "8x8x1", "--classes", "2"], "give a number"),
    (["--board", "esp32", "--input", "96x96x1", "--classes", "1"], "at least 2"),
])
def test_user_mistakes(argv: list[str], msg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if "-o" not in argv:
        argv = argv + ["-o", str(tmp_path / "m.keras")]
    assert cli.main(["fit", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mpyml fit: ") and msg in err[0], err


def test_board_profiles_sourced_and_in_readme(capsys: pytest.CaptureFixture[str]) -> None:
    names = {"esp32", "esp32-cam", "rp2040", "stm32f4", "stm32h7", "nrf52840"}
    assert set(BOARDS) == names
    for b in BOARDS.values():
        assert b.ram_budget > 16 * 1024 and b.flash_budget > 32 * 1024 and b.macs_budget() > 10 ** 6
        for src in (b.heap_source, b.engine_ram_source, b.fs_source, b.speed_source):
            assert len(src) > 20
    assert BOARDS["esp32"].model_in_ram and BOARDS["esp32-cam"].ram_budget > 3 * 1024 * 1024
    readme = (ROOT / "README.md").read_text()
    assert boards_markdown() in readme, "README board table is stale: paste fit_boards.boards_markdown()"
    assert cli.main(["fit", "--list-boards"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == len(BOARDS)


def test_board_figures_match_the_build(tmp_path: Path) -> None:
    """The table's engine RAM and deploy bytes are those of today's build: a native module's heap share is its
    .mpy size within 5% (bare-metal ports load its code into the heap; tools/measure_engine_ram.py measures it),
    viper's exceeds its viper_engine.mpy, and the bytes deployed before a model are what `mpyml deploy` compiles
    and copies for the board's arch (package + native module) within 3%. Stale after an engine or package
    change: rerun tools/measure_engine_ram.py."""
    from mpyml import deploy, paths
    for b in BOARDS.values():
        if b.engine == "c" and b.engine_ram:
            mpy = paths.natmod_path(b.arch)
            if not mpy.is_file():
                skip_or_fail(f"{mpy} missing: `make natmods`")
            assert 0.95 * mpy.stat().st_size <= b.engine_ram <= 1.05 * mpy.stat().st_size, (b.name, b.engine_ram)
        if b.engine == "viper":
            core = paths.BUILD_DIR / "viper" / b.arch / "mpyml" / "viper_engine.mpy"
            if not core.is_file():
                skip_or_fail(f"{core} missing: `make viper`")
            assert b.engine_ram > core.stat().st_size, (b.name, b.engine_ram)
        if b.deploy_files:
            items, _ = deploy.compile_package(None, b.arch, False, tmp_path / b.name)
            real = sum(len(i.data) for i in items)
            if b.engine == "c":
                real += paths.natmod_path(b.arch).stat().st_size
            assert 0.97 * real <= b.deploy_files <= 1.03 * real, (b.name, b.deploy_files, real)
