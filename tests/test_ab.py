"""`mpyml deploy --ab` and `mpyml.load_ab()` on the virtual board (GitHub issue 13, item 5-ab): the replaced
model is kept as .prev and used when the new one is missing, invalid, unsigned (with a board key) or fails the
app's self-test. About 15 s (four deploys to the virtual board, one board session)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mpyml import pack
from mpyml import sign as sg

if TYPE_CHECKING:
    from virtual_board import VirtualBoard

pytest_plugins = ["virtual_board"]


def _model(seed: int, units: int) -> bytes:
    sys.path.insert(0, str(Path(__file__).parent))
    import tflite_build as tb
    return pack(tb.fully_connected_model(np.random.default_rng(seed), in_shape=(1, 32), units=units))


def _summary(r: subprocess.CompletedProcess) -> dict:
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


SCENARIOS = """
import mpyml, os
def show(tag, **kw):
    try:
        m = mpyml.load_ab('models/m.mpk', **kw)
        print('R|%s|%s|%d|%s' % (tag, m.source, m.output.size, m.fallback_reason))
    except ValueError as e:
        print('E|%s|%s' % (tag, e))
def put(p, data):
    with open(p, 'wb') as f:
        f.write(data)
good = open('models/m.mpk', 'rb').read()
show('new')
show('selftest_false', selftest=lambda m: m.output.size == 4)
show('selftest_raises', selftest=lambda m: 1 // 0 if m.output.size == 8 else True)
show('both_fail_selftest', selftest=lambda m: False)
bad = bytearray(good)
bad[100] ^= 0xFF
put('models/m.mpk', bad)
show('tampered')
put('models/m.mpk', good[:-80])
show('unsigned')
os.remove('models/m.mpk')
show('missing')
put('models/m.mpk.prev', b'junk')
show('no_usable')
os.remove('models/m.mpk.prev')
"""


def test_deploy_ab_and_load_ab(virtual_board: VirtualBoard, tmp_path: Path, natmod_x64: Path) -> None:
    b = virtual_board
    key, pub = sg.write_keypair(tmp_path / "key")
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    v1, v2 = tmp_path / "v1" / "m.mpk", tmp_path / "v2" / "m.mpk"
    # signed, told apart on the board by their output size
    v1.write_bytes(sg.sign_mpk(_model(1, 4), sg.load_private(key)))
    v2.write_bytes(sg.sign_mpk(_model(2, 8), sg.load_private(key)))
    models = b.dir / "models"

    first = _summary(b.deploy(str(v1), "--ab", "--key", str(pub), "--json"))
    assert "models/m.mpk" in first["copied"] and not (models / "m.mpk.prev").exists()  # nothing to keep yet
    r = b.deploy(str(v2), "--ab", "--key", str(pub))
    assert r.returncode == 0 and "kept models/m.mpk as models/m.mpk.prev (--ab)" in r.stdout, r.stdout + r.stderr
    assert (models / "m.mpk").read_bytes() == v2.read_bytes()
    assert (models / "m.mpk.prev").read_bytes() == v1.read_bytes()
    again = _summary(b.deploy(str(v2), "--ab", "--key", str(pub), "--json"))   # unchanged: .prev kept
    assert "models/m.mpk" in again["unchanged"] and (models / "m.mpk.prev").read_bytes() == v1.read_bytes()

    res = {}
    for ln in b.exec(SCENARIOS).splitlines():
        if ln[:2] in ("R|", "E|"):
            f = ln.split("|")
            res[f[1]] = f[2:] if f[0] == "R" else ["error", "|".join(f[2:])]
    prev, new = "models/m.mpk.prev", "models/m.mpk"
    assert res["new"] == [new, "8", "None"]
    assert res["selftest_false"][:2] == [prev, "4"] and "self-test returned False" in res["selftest_false"][2]
    assert res["selftest_raises"][:2] == [prev, "4"] and "ZeroDivisionError" in res["selftest_raises"][2]
    assert res["both_fail_selftest"][0] == "error" and res["both_fail_selftest"][1].count("self-test") == 2
    assert res["tampered"][:2] == [prev, "4"] and "signature check failed" in res["tampered"][2]
    assert res["unsigned"][:2] == [prev, "4"] and "not signed" in res["unsigned"][2]
    assert res["missing"][:2] == [prev, "4"]
    assert res["no_usable"][0] == "error" and "no usable model" in res["no_usable"][1], res["no_usable"]
    assert len(res) == 8, res

    # without --ab a deploy replaces the model and keeps no fallback
    _summary(b.deploy(str(v1), "--key", str(pub), "--json"))
    assert not (models / "m.mpk.prev").exists() and (models / "m.mpk").read_bytes() == v1.read_bytes()
