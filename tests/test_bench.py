"""`mpyml bench`: runs end to end on one small model and reports every column (timings are not asserted)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from conftest import shared_path
from mpyml import bench


def _parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="mpyml")
    sub = ap.add_subparsers(dest="command", required=True)
    bench.add_commands(sub)
    return ap.parse_args(["bench", *argv])


def test_bench_args() -> None:
    args = _parse(["--repeat", "3", "--no-mlperf", "a.tflite", "--engine", "c", "--engine", "viper"])
    assert args.func is bench.main
    assert args.repeat == 3 and args.no_mlperf and args.json is False
    assert args.models == [Path("a.tflite")] and args.engine == ["c", "viper"]
    assert _parse([]).engine is None and _parse([]).repeat == bench.DEFAULT_REPEAT


def test_table_has_a_column_group_per_engine() -> None:
    row = bench.BenchRow(model="m", path="m.tflite", tflite_bytes=1000, mpk_bytes=800, size_ratio=0.8,
                         tflm_head_bytes=512, mpyml_arena_bytes=256, arena_ratio=0.5, tflm_us=100.0,
                         engines=[bench.EngineResult(None, 50.0, 0.5, True),
                                  bench.EngineResult("viper", 400.0, 4.0, False)])
    text = bench.format_table([row], [None, "viper"], repeat=3)
    header = text.splitlines()[0]
    for col in ("mpyml us", "mpyml x", "mpyml exact", "mpyml:viper us", "mpyml:viper x", "mpyml:viper exact"):
        assert col in header
    line = text.splitlines()[2]
    assert line.split() == ["m", "1000", "800", "0.80", "512", "256", "0.50", "-", "-", "100", "50.0", "0.50",
                            "yes", "400", "4.00", "NO"]


def test_engine_ratios_line_per_pair() -> None:
    def row(name: str, c: float, viper: float) -> bench.BenchRow:
        return bench.BenchRow(model=name, path=name, tflite_bytes=1, mpk_bytes=1, size_ratio=1.0, tflm_head_bytes=1,
                              mpyml_arena_bytes=1, arena_ratio=1.0, tflm_us=1.0,
                              engines=[bench.EngineResult("c", c), bench.EngineResult("viper", viper)])
    lines = bench.engine_ratios([row("a", 10.0, 40.0), row("b", 5.0, 5.0)], ["c", "viper"])
    assert lines == ["mpyml:viper / mpyml:c time: a 4.00, b 1.00; geomean 2.00"]
    assert bench.engine_ratios([row("a", 10.0, 40.0)], ["c"]) == []


def test_c_portable_engine_names_its_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mpyml import paths, unix_port
    monkeypatch.setattr(paths, "NATMOD_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="make bench-viper"):
        unix_port.device_engine("c-portable")
    (tmp_path / "x64-portable").mkdir()
    (tmp_path / "x64-portable" / "mpyml_engine.mpy").write_bytes(b"M")
    assert unix_port.device_engine("c-portable") == ("c", "x64-portable")
    assert unix_port.device_engine("viper") == ("viper", "x64")
    assert unix_port.device_engine(None) == (None, "x64")


@pytest.mark.usefixtures("natmod_x64")
def test_bench_one_model_table(capsys: pytest.CaptureFixture[str]) -> None:
    model = shared_path("models", "mlperf_tiny", "ad01_int8.tflite")
    rc = bench.main(_parse(["--repeat", "3", "--no-mlperf", str(model)]))
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = lines[0].split("  ")
    cols = [c.strip() for c in header if c.strip()]
    assert cols == bench.table_columns([None])
    for col in ("model", "tflite B", "mpk B", "size x", "tflm head B", "mpyml arena B", "arena x", "tflm us",
                "mpyml us", "time x", "exact"):
        assert col in cols
    row = next(ln for ln in lines if ln.startswith("ad01_int8"))
    cells = row.split()
    assert len(cells) == len(cols), row
    assert "-" not in cells and "error" not in cells, out
    assert int(cells[1]) == model.stat().st_size
    assert int(cells[4]) == 768  # tflite-micro's head for this model (see test_tflm)
    assert cells[-1] == "yes", out  # mpyml bit-exact with tflite-micro
    assert rc == 0


@pytest.mark.usefixtures("natmod_x64")
def test_bench_json(capsys: pytest.CaptureFixture[str]) -> None:
    model = shared_path("models", "mlperf_tiny", "ad01_int8.tflite")
    rc = bench.main(_parse(["--repeat", "3", "--no-mlperf", "--json", str(model)]))
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and data["repeat"] == 3 and data["engines"] == [None]
    (m,) = data["models"]
    assert m["model"] == "ad01_int8" and m["error"] is None
    for key in ("tflite_bytes", "mpk_bytes", "size_ratio", "tflm_head_bytes", "mpyml_arena_bytes",
                "arena_ratio", "tflm_us"):
        assert m[key] is not None and m[key] > 0, key
    (e,) = m["engines"]
    assert e["error"] is None and e["median_us"] > 0 and e["time_ratio"] > 0 and e["exact"] is True


def test_bench_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(_parse(["--no-mlperf", str(tmp_path / "nope.tflite")])) == 2
    assert "no such file" in capsys.readouterr().err
