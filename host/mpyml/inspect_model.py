"""`mpyml inspect`: a per-layer table (op, shapes, params, MACs, activation bytes, arena offset) and totals,
for a packed .mpk or a .tflite (packed in memory first)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from . import spec
from .mpk import MOp, MpkFile
from .packer import pack_model, serialize

# every op's param names, from the spec
PARAM_NAMES = {op.name: tuple(p.name for p in op.params) for op in spec.OPS}
SHOWN = ("stride_w", "stride_h", "dil_w", "dil_h", "pad_w", "pad_h", "filter_w", "filter_h", "act_min", "act_max",
         "depth_multiplier")


def _macs(f: MpkFile, op: MOp) -> int:
    out = f.tensors[op.outputs[0]]
    if op.name in ("CONV_2D", "CONV_2D_INPLACE"):
        _, kh, kw, c = f.tensors[op.inputs[1]].shape
        return out.elements * kh * kw * c
    if op.name in ("DEPTHWISE_CONV_2D", "DEPTHWISE_CONV_2D_INPLACE"):
        _, kh, kw, _ = f.tensors[op.inputs[1]].shape
        return out.elements * kh * kw
    if op.name == "FULLY_CONNECTED":
        return out.elements * f.tensors[op.inputs[1]].shape[1]
    if op.name in ("SPARSE_FULLY_CONNECTED", "SPARSE_CONV_2D"):       # the dense layer's MACs (zeros included)
        return out.elements * (f.tensors[op.inputs[3]].elements - 1)
    return 0


def _sparsity(f: MpkFile, op: MOp) -> tuple[float | None, int]:
    """(share of zero weights, bytes the sparse form saves) of an FC / conv layer; (None, 0) for other ops."""
    st = f.sparse_stats(op)
    if st is not None:
        return float(st["sparsity"]), int(st["saved_bytes"])
    if op.name in ("FULLY_CONNECTED", "CONV_2D", "CONV_2D_INPLACE"):
        w = f.const_array(f.tensors[op.inputs[1]])
        return float(np.mean(w == 0)), 0
    return None, 0


def inspect_model(data: bytes, max_ram: int | None = None) -> dict:
    """Describe a model (.mpk bytes, or .tflite bytes which are packed first, with `max_ram` as
    `mpyml pack --max-ram` packs them) as a dict."""
    tflite_bytes = None
    notes: list[str] | None = None
    patch_info = None
    if data[4:8] == b"TFL3":
        tflite_bytes = len(data)
        pm = pack_model(data, max_ram)
        notes = pm.notes
        patch_info = getattr(pm, "patch", None)
        data = serialize(pm)
    f = MpkFile(data)
    h = f.header
    integrity = _integrity(data, f)
    layers = []
    live_peak = 0
    live = _live_bytes(data, f)
    from .patch import tile_map
    tiles = tile_map(f.ops)
    for op in f.ops:
        names = PARAM_NAMES.get(op.name, ())
        params = dict(zip(names, op.params, strict=False))
        out = f.tensors[op.outputs[0]]
        weights = sum(f.tensors[i].nbytes for i in op.inputs if i != 0xFFFF and not f.tensors[i].in_arena)
        act_bytes = sum(f.tensors[i].nbytes for i in op.inputs + op.outputs if i != 0xFFFF and f.tensors[i].in_arena)
        live_peak = max(live_peak, act_bytes)
        layers.append({
            "index": op.index,
            "op": op.name,
            "inputs": [list(f.tensors[i].shape) for i in op.inputs if i != 0xFFFF and f.tensors[i].in_arena],
            "output": list(out.shape),
            "params": {k: v for k, v in params.items() if k in SHOWN},
            "macs": _macs(f, op),
            "weights_bytes": weights,
            "activation_bytes": out.nbytes,
            "arena_offset": out.offset,
            "live_arena_bytes": live[op.index],           # arena bytes in use while this op runs
            "in_place": bool(op.flags & spec.OP_FLAGS["IN_PLACE"]),
            "patch": list(tiles[op.index]) if op.index in tiles else None,   # [stage, tile] of a patch plan
            "sparsity": _sparsity(f, op)[0],              # share of zero weights (FC / conv), else None
            "sparse_saved_bytes": _sparsity(f, op)[1],    # bytes saved by the sparse form (sparse ops)
        })
    res = {
        "format_version": h["version"],
        "file_bytes": h["file_size"],
        "weights_bytes": h["data_size"],
        "arena_bytes": h["arena_size"],
        "peak_op_activation_bytes": live_peak,
        "peak_live_arena_bytes": max(live, default=0),
        "macs": sum(layer["macs"] for layer in layers),
        "ops": len(layers),
        "tensors": h["n_tensors"],
        "trusted_bytes": h["trusted_size"],
        "sparse_section_bytes": h["sparse_size"],
        "inputs": [{"shape": list(t.shape), "dtype": t.dtype, "scale": t.scale, "zero_point": t.zero_point}
                   for t in f.input_tensors()],
        "outputs": [{"shape": list(t.shape), "dtype": t.dtype, "scale": t.scale, "zero_point": t.zero_point}
                    for t in f.output_tensors()],
        **integrity,
        "layers": layers,
    }
    stages = sorted({v[0] for v in tiles.values()})
    if stages:
        res["patch_stages"] = [{
            "ops": [min(i for i, v in tiles.items() if v[0] == s), max(i for i, v in tiles.items() if v[0] == s)],
            "tiles": 1 + max(v[1] for v in tiles.values() if v[0] == s),
            "macs": sum(layers[i]["macs"] for i, v in tiles.items() if v[0] == s)} for s in stages]
    if patch_info is not None:
        import dataclasses
        res["patch"] = {**dataclasses.asdict(patch_info), "mac_overhead": patch_info.mac_overhead}
    if tflite_bytes is not None:
        res["tflite_bytes"] = tflite_bytes
    if notes is not None:
        res["cleanup"] = notes          # graph.cleanup(): what was folded / fused before lowering
    return res


@dataclass
class _LiveTensor:
    storage: int
    offset: int
    nbytes: int
    flags: int


def _live_bytes(data: bytes, f: MpkFile) -> list[int]:
    """Arena bytes live at each op, from the file's tensor offsets (planner.live_bytes_per_op)."""
    from .planner import live_bytes_per_op
    t0 = f.header["tensors_offset"]
    ts = [_LiveTensor(t.storage, t.offset, t.nbytes, data[t0 + spec.TENSOR_SIZE * t.index + 3]) for t in f.tensors]
    return live_bytes_per_op(ts, f.ops, f.inputs, f.outputs)


def plot_memory(info: dict, path: str, title: str = "") -> None:
    """Bar chart of the live arena bytes per op (as MCUNetV2's per-block memory figure), written to `path`.
    Raises ImportError when matplotlib is not installed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    layers = info["layers"]
    x = [layer["index"] for layer in layers]
    live = [layer["live_arena_bytes"] / 1024 for layer in layers]
    fig, ax = plt.subplots(figsize=(min(max(6.0, 0.22 * len(layers) + 2), 18.0), 3.6))
    colors = ["tab:orange" if layer["in_place"] else "tab:green" if layer.get("patch") else "tab:blue"
              for layer in layers]
    ax.bar(x, live, color=colors, width=0.8)
    for st in info.get("patch_stages", []):      # patch stages: shaded, labelled with their tile count
        ax.axvspan(st["ops"][0] - 0.5, st["ops"][1] + 0.5, color="tab:green", alpha=0.08)
        ax.text(st["ops"][0], max(live, default=0) * 0.97, f" patch stage: {st['tiles']} tiles", fontsize=7,
                va="top", color="tab:green")
    ax.axhline(info["arena_bytes"] / 1024, color="tab:red", linestyle="--", linewidth=1,
               label=f"arena {info['arena_bytes']:,} B")
    ax.set_xlabel("op")
    ax.set_ylabel("live arena (KiB)")
    if len(layers) <= 40:
        ax.set_xticks(x, [f"{layer['index']} {layer['op']}" for layer in layers], rotation=90, fontsize=7)
    ax.set_title(title or f"live activation memory per op (peak {info['peak_live_arena_bytes']:,} B)")
    if any(layer["in_place"] or layer.get("patch") for layer in layers):
        from matplotlib.patches import Patch
        handles = [ax.get_legend_handles_labels()[0][0]]
        if any(layer["in_place"] for layer in layers):
            handles.append(Patch(color="tab:orange", label="in place"))
        if any(layer.get("patch") for layer in layers):
            handles.append(Patch(color="tab:green", label="patch tile ops"))
        ax.legend(handles=handles, loc="upper right", fontsize=8)
    else:
        ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _integrity(data: bytes, f: MpkFile) -> dict:
    """CRC and the engine's own validation (host library, when built): what the board would say."""
    out: dict = {"crc_ok": f.crc_ok()}
    try:
        from . import hostlib
        st, idx, detail, _ = hostlib.prepare_status(data)
        out["loader_ok"] = st == hostlib.OK
        if st != hostlib.OK:
            out["loader_error"] = hostlib.describe_error(st, idx, detail, data)
        out["ctx_bytes"] = hostlib.ctx_size(data)
    except OSError:
        out["loader_ok"] = None         # host library not built: only the CRC was checked
    return out


def _fmt_shape(s: list[int]) -> str:
    return "x".join(str(d) for d in s)


def format_table(info: dict) -> str:
    rows = [("#", "op", "input", "output", "params", "MACs", "act B", "arena off", "live B", "zeros", "saved B")]
    for layer in info["layers"]:
        p = layer["params"]
        ptxt = " ".join(f"{k}={v}" for k, v in p.items() if not (k.startswith("dil") and v == 1)
                        and not (k == "depth_multiplier" and v == 1) and not (k.startswith("pad") and v == 0))
        tile = layer.get("patch")
        rows.append((str(layer["index"]), layer["op"] + ("*" if layer.get("in_place") else "")
                     + (f" [s{tile[0]} t{tile[1]}]" if tile else ""),
                     " ".join(_fmt_shape(s) for s in layer["inputs"]),
                     _fmt_shape(layer["output"]), ptxt, f"{layer['macs']:,}", str(layer["activation_bytes"]),
                     str(layer["arena_offset"]), f"{layer.get('live_arena_bytes', 0):,}",
                     "" if layer.get("sparsity") is None else f"{100 * layer['sparsity']:.0f}%",
                     f"{layer['sparse_saved_bytes']:,}" if layer.get("sparse_saved_bytes") else ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i in (1, 2, 3, 4) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths,
                                                                                                         strict=True)))
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    ins = ", ".join(f"{t.get('dtype', 'int8')} {_fmt_shape(t['shape'])} (scale {t['scale']:.6g}, "
                    f"zp {t['zero_point']})" for t in info["inputs"])
    outs = ", ".join(f"{t.get('dtype', 'int8')} {_fmt_shape(t['shape'])} (scale {t['scale']:.6g}, "
                     f"zp {t['zero_point']})" for t in info["outputs"])
    lines += [
        "",
        f"inputs:  {ins}",
        f"outputs: {outs}",
        f"ops {info['ops']}, MACs {info['macs']:,}",
        f"weights {info['weights_bytes']:,} B, arena {info['arena_bytes']:,} B "
        f"(largest single-op working set {info['peak_op_activation_bytes']:,} B), "
        f"packed file {info['file_bytes']:,} B" + (f", .tflite {info['tflite_bytes']:,} B" if "tflite_bytes" in info
                                                  else ""),
        f"peak RAM at run time: arena {info['arena_bytes']:,} B + engine context "
        f"{info.get('ctx_bytes', 0):,} B (its copy of the validated records and {info.get('trusted_bytes', 0):,} B "
        f"of requantization params / tables) (+ the model file if it is loaded into RAM instead of memory-mapped)",
    ]
    saved = sum(layer.get("sparse_saved_bytes", 0) for layer in info["layers"])
    if saved:
        lines.append(f"sparse weights (format v{info['format_version']}): {saved:,} B saved against dense storage; "
                     f"sparse section {info.get('sparse_section_bytes', 0):,} B (row indices and column pointers, "
                     "copied into the engine context for a model in writable memory)")
    if any(layer.get("in_place") for layer in info["layers"]):
        lines.append("* in place: the op writes its output over an input that dies there (exact alias)")
    for k, st in enumerate(info.get("patch_stages", [])):
        lines.append(f"[s{k} tN]: patch stage {k}, ops {st['ops'][0]}..{st['ops'][1]}: {st['tiles']} tiles, each "
                     f"gathering its input window (STRIDED_COPY), running the stage on tile buffers and writing its "
                     f"part of the stage output (WRITE_BOX); {st['macs']:,} MACs with recomputation")
    p = info.get("patch")
    if p:
        lines.append(f"patch plan (--max-ram {p['arena']:,}): arena {p['arena_unpatched']:,} B without patching, "
                     f"{p['arena']:,} B with; MACs {p['macs_unpatched']:,} -> {p['macs']:,} "
                     f"(x{p['mac_overhead']:.3f} recomputation); op records {p['ops_bytes_unpatched']:,} -> "
                     f"{p['ops_bytes']:,} B, tensors {p['tensors_unpatched']} -> {p['tensors']} (the engine context "
                     "copies both for a model in writable memory)")
    lines.append("live B: arena bytes in use while the op runs (peak "
                 f"{info.get('peak_live_arena_bytes', 0):,} B; the arena adds what fragmentation costs)")
    if not info.get("crc_ok", True):
        lines += ["", "WARNING: CRC mismatch: the file is corrupted; the board will refuse it. Repack it."]
    elif info.get("loader_ok") is False:
        lines += ["", f"WARNING: the board's loader would refuse this file: {info.get('loader_error')}"]
    if info.get("cleanup"):
        lines += ["", "graph clean-up:"] + [f"  {n}" for n in info["cleanup"]]
    return "\n".join(lines)


def tflite_ops_table(data: bytes) -> str:
    """Per-op table of a .tflite that cannot be packed: every op, its shapes, and whether mpyml runs it."""
    from .packer import OPCODES
    from .tflite_model import read_tflite

    m = read_tflite(data)
    rows = [("#", "op", "inputs", "output", "mpyml")]
    for op in m.operators:
        ins = " ".join(_fmt_shape(list(m.tensors[i].shape)) for i in op.inputs
                       if i >= 0 and not m.tensors[i].is_const)
        out = " ".join(_fmt_shape(list(m.tensors[i].shape)) for i in op.outputs)
        rows.append((str(op.index), op.op, ins, out, "yes" if op.op in OPCODES else "NOT SUPPORTED"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def inspect_json(data: bytes, max_ram: int | None = None) -> str:
    return json.dumps(inspect_model(data, max_ram), indent=2,
                      default=lambda o: o.item() if isinstance(o, np.generic) else o)
