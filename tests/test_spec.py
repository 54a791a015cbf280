"""The one spec (host/mpyml/spec): generated files current, codes consistent, packer ranges = loader ranges."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from mpyml import packer, paths, spec
from mpyml.tflite_model import read_tflite

GEN = paths.REPO / "tools" / "gen_spec.py"


def test_generated_files_current() -> None:
    r = subprocess.run([sys.executable, str(GEN), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_codes_unique_and_named() -> None:
    assert len(spec.OPCODES) == len(spec.OPS) == len({o.code for o in spec.OPS})
    codes = spec.check_codes()
    assert all(c.message and c.name.isupper() for c in codes.values())
    assert all(0 < code < spec.PARAM_BASE for code in codes)
    for op in spec.OPS:
        assert op.core or op.kernel, f"{op.name}: non-core op without a kernel prefix"
        for p in op.params:
            assert p.lo <= p.hi, (op.name, p)
        for o in op.inputs + op.outputs:
            assert o.types and all(t in spec.TYPES for t in o.types), (op.name, o)
            assert o.storage in ("arena", "const", "any")


def test_c_header_matches_spec() -> None:
    text = (paths.REPO / "native_modules/engine/mpyml_spec.h").read_text()
    for op in spec.OPS:
        assert re.search(rf"MPYML_OP_{op.name} = {op.code},", text)
    for name, (code, _, _) in spec.TYPES.items():
        assert f"MPYML_T_{name.upper()} = {code}," in text
    assert f"#define MPYML_VERSION {spec.VERSION}u" in text


def test_device_constants_match_spec() -> None:
    ns: dict = {}
    src = (paths.DEVICE_DIR / "mpyml" / "_spec.py").read_text().replace("from micropython import const", "")
    exec(compile(src, "_spec.py", "exec"), {"const": lambda v: v}, ns)
    assert ns["VERSION"] == spec.VERSION
    for op in spec.OPS:
        assert ns["OP_NAMES"][op.code] == op.name
        lo, hi, _, _, rng, _, _, core, names, _, in_place_ok = ns["OPS"][op.code]
        assert rng == tuple((p.lo, p.hi) for p in op.params) and names == tuple(p.name for p in op.params)
        assert bool(core) == op.core
        assert bool(in_place_ok) == op.in_place_ok


def test_check_message_names_param() -> None:
    conv = spec.OPS_BY_NAME["CONV_2D"]
    assert "stride_w" in spec.check_message(spec.PARAM_BASE, conv.code)
    assert "operand 1 (filter)" in spec.check_message(spec.OPERAND_BASE + 1, conv.code)


def test_packer_refuses_what_the_loader_refuses(shared_dir) -> None:  # type: ignore[no-untyped-def]
    """A stride the loader rejects (1100 > 1024) is a PackError naming the param, not a file the board refuses."""
    m = read_tflite((shared_dir / "models/mlperf_tiny/kws_ref_model.tflite").read_bytes())
    conv = next(op for op in m.operators if op.op == "CONV_2D")
    b = packer._Builder(m)
    with pytest.raises(packer.PackError, match=r"stride_w = 1100 is outside 1\.\.1024.*board would refuse"):
        b.emit("CONV_2D", [0] * 5, [0], [1100, 1, 1, 1, 0, 0, 0, 0, -128, 127, 1], conv)


def test_spec_tflite_ops_are_the_supported_ones() -> None:
    """The README's op table (generated from the spec) lists exactly what the packer lowers: the lowering
    registry plus the ops the graph clean-up turns into RESHAPE."""
    in_spec = {t for op in spec.OPS for t in op.tflite}
    lowered = {t for t in packer.supported_tflite_ops() if not t.startswith("MPYML_")}
    assert in_spec == lowered | {"EXPAND_DIMS", "SQUEEZE"}, (in_spec ^ (lowered | {"EXPAND_DIMS", "SQUEEZE"}))
    assert len(in_spec) >= 35
