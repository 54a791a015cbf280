"""`mpyml convert --report DIR`: a Markdown report with PNG plots (matplotlib, headless Agg backend).

report.md + accuracy.png (float vs int8 vs device, and QAT when run), sqnr.png (per-op output SQNR against the
float model, the op that loses most marked) and memory.png (per-layer activation bytes from mpyml.inspect_model).
With --prune / --prune-channels / --teacher: a table of the original and every compression stage (int8 weight
sparsity, .mpk, weights, arena, MACs, accuracy on tflite-micro and the device, bit-exact, unix-port invoke) and
compression.png (accuracy against .mpk size and against MACs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["write_report"]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _accuracy_png(m: dict[str, Any], path: Path) -> bool:
    if "metric" not in m:
        return False
    k = m["metric"]
    names = ["float (Keras)", "int8 PTQ (tflite-micro)", "int8 PTQ (device)"]
    vals = [m[f"float_{k}"], m[f"int8_{k}"], m[f"device_{k}"]]
    q = m.get("qat") or {}
    if f"int8_{k}" in q:
        names += ["int8 QAT (tflite-micro)", "int8 QAT (device)"]
        vals += [q[f"int8_{k}"], q[f"device_{k}"]]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    scale = 100.0 if k == "accuracy" else 1.0
    bars = ax.barh(names[::-1], [v * scale for v in vals[::-1]], color="#4878a8")
    for b, v in zip(bars, vals[::-1], strict=True):
        ax.text(b.get_width(), b.get_y() + b.get_height() / 2, f" {v * scale:.2f}", va="center", fontsize=8)
    ax.set_xlabel("accuracy (%)" if k == "accuracy" else "mean absolute error")
    if k == "accuracy":
        ax.set_xlim(max(0.0, min(vals) * 100 - 10), 101.0)
    ax.set_title(f"{k} on {m['eval_samples']} samples")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _sqnr_png(m: dict[str, Any], path: Path) -> bool:
    rows = m.get("op_sqnr_db") or []
    if not rows:
        return False
    plt = _plt()
    labels = [f"{i} {r['op']}" for i, r in enumerate(rows)]
    vals = [r["sqnr_db"] if r["sqnr_db"] is not None else 0.0 for r in rows]
    worst = max(range(len(vals)), key=lambda i: rows[i].get("loss_db") if rows[i].get("loss_db") is not None
                else -1e9)
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.2))
    colors = ["#c44e52" if i == worst else "#4878a8" for i in range(len(rows))]
    ax.barh(labels[::-1], vals[::-1], color=colors[::-1])
    ax.set_xlabel("output SQNR vs float model (dB, higher is better)")
    ax.set_title("per-op quantization noise")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _memory_png(m: dict[str, Any], path: Path) -> bool:
    layers = m.get("layers") or []
    if not layers:
        return False
    plt = _plt()
    labels = [f"{i} {ly['op']}" for i, ly in enumerate(layers)]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(layers) + 1.2))
    ax.barh(labels[::-1], [ly["activation_bytes"] for ly in layers][::-1], color="#55a868")
    ax.set_xlabel(f"activation bytes per layer (arena {m['arena_bytes']:,} B)")
    ax.set_title("activation memory")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def stage_rows(m: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name, measurements) of the original model and each compression stage, in the order they ran."""
    rows: list[tuple[str, dict[str, Any]]] = [("original", m)]
    if "distill" in m:
        rows += [("student without teacher", m["distill"]["without_teacher"]),
                 ("student with teacher", m["distill"]["with_teacher"])]
    if "prune_channels" in m:
        rows.append((f"structured {m['prune_channels']['fraction']:.0%} channels", m["prune_channels"]))
    if "prune" in m:
        rows.append((f"magnitude {m['prune']['target_sparsity']:.0%}", m["prune"]))
    return rows


def _compression_md(m: dict[str, Any]) -> list[str]:
    k = m.get("metric")
    md = ["## Compression", "", "| model | int8 weights zero | .mpk B | weights B | arena B | MACs | "
          + (f"int8 {k} | device {k} | bit-exact | " if k else "") + "invoke µs |",
          "|---|---:|---:|---:|---:|---:|" + ("---:|---:|---|" if k else "") + "---:|"]
    for name, d in stage_rows(m):
        sp = d.get("int8_weight_sparsity")
        cells = [name, "?" if sp is None else f"{sp:.1%}", f"{d['file_bytes']:,}", f"{d['weights_bytes']:,}",
                 f"{d['arena_bytes']:,}", f"{d['macs']:,}"]
        if k:
            cells += [f"{d.get(f'int8_{k}', float('nan')):.4f}", f"{d.get(f'device_{k}', float('nan')):.4f}",
                      "yes" if d.get("bit_exact") else "NO"]
        cells.append("" if d.get("unix_port_us") is None else f"{d['unix_port_us']:.0f}")
        md.append("| " + " | ".join(cells) + " |")
    if "distill" in m:
        d = m["distill"]
        md += ["", f"Distillation: teacher `{d['teacher']}`, T = {d['temperature']:g}, alpha = {d['alpha']:g} "
               f"(hard-label weight), {d['epochs']} epochs, seed {d['seed']}; both students start from the same "
               "weights with the same seed and budget."]
    if "prune_channels" in m:
        md += ["", "Channel groups: " + ", ".join(f"{' + '.join(g['layers'])} {g['channels']} -> {g['kept']}"
                                                  for g in m["prune_channels"]["groups"])]
    md.append("")
    return md


def _compression_png(m: dict[str, Any], path: Path) -> bool:
    k = m.get("metric")
    if not k:
        return False
    rows = [(n, d) for n, d in stage_rows(m) if f"int8_{k}" in d]
    plt = _plt()
    scale = 100.0 if k == "accuracy" else 1.0
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, key, label in ((axes[0], "file_bytes", ".mpk bytes"), (axes[1], "macs", "MACs")):
        for n, d in rows:
            ax.scatter(d[key], d[f"int8_{k}"] * scale, color="#4878a8")
            ax.annotate(n, (d[key], d[f"int8_{k}"] * scale), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(label)
        ax.set_ylabel("int8 accuracy (%)" if k == "accuracy" else "int8 mean absolute error")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_report(out_dir: Path, m: dict[str, Any]) -> Path:
    """Write out_dir/report.md and its PNGs; returns the .md path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md = [f"# mpyml convert: {m.get('model') or 'model'}", ""]
    md += ["| | |", "|---|---|",
           f"| I/O | {m['io']} |", f"| ops | {m['ops']} |", f"| MACs | {m['macs']:,} |",
           f"| arena | {m['arena_bytes']:,} B |",
           f"| .mpk | {m['file_bytes']:,} B (weights {m['weights_bytes']:,} B) |",
           f"| .tflite | {m['tflite_bytes']:,} B |", f"| calibration samples | {m['calibration_samples']} |"]
    if "metric" in m:
        k = m["metric"]
        md += [f"| float {k} | {m[f'float_{k}']:.4f} |", f"| int8 {k} (tflite-micro) | {m[f'int8_{k}']:.4f} |",
               f"| device {k} (unix port) | {m[f'device_{k}']:.4f} |",
               f"| bit-exact with tflite-micro | {m['bit_exact_samples']}/{m['eval_samples']} samples |"]
        if m.get("unix_port_us") is not None:
            md.append(f"| median invoke (unix port) | {m['unix_port_us']:.0f} µs |")
        q = m.get("qat") or {}
        if f"int8_{k}" in q:
            md += [f"| QAT int8 {k} (tflite-micro) | {q[f'int8_{k}']:.4f} |",
                   f"| QAT device {k} | {q[f'device_{k}']:.4f} |",
                   f"| QAT bit-exact | {q['bit_exact_samples']}/{m['eval_samples']} samples |"]
    md.append("")
    if _accuracy_png(m, out_dir / "accuracy.png"):
        md += ["## Accuracy", "", "![accuracy](accuracy.png)", ""]
    if _sqnr_png(m, out_dir / "sqnr.png"):
        md += ["## Per-op SQNR", "", "Each int8 op's dequantized output against the float32 model's same tensor "
               "on the calibration data; the red bar loses most.", "", "![sqnr](sqnr.png)", "",
               "| # | op | tensor | SQNR dB | lost by the op dB |", "|---:|---|---|---:|---:|"]
        for i, r in enumerate(m["op_sqnr_db"]):
            db = "exact" if r["sqnr_db"] is None else f"{r['sqnr_db']:.1f}"
            loss = "" if r.get("loss_db") is None else f"{r['loss_db']:.1f}"
            md.append(f"| {i} | {r['op']} | `{r['tensor']}` | {db} | {loss} |")
        md.append("")
    if "stages" in m:
        md += _compression_md(m)
        if _compression_png(m, out_dir / "compression.png"):
            md += ["![compression](compression.png)", ""]
    if _memory_png(m, out_dir / "memory.png"):
        md += ["## Activation memory", "", "![memory](memory.png)", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(md))
    return path
