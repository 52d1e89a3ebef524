"""Report of a benchmark run: markdown tables, a JSON results file, PNG plots and a contact sheet.

Plots (matplotlib, Agg backend): ``psnr_vs_offset.png`` (full-frame PSNR against frame offset per method,
one line per start frame and the mean), ``consistency.png`` (PSNR at the check poses per memory mode),
``timing.png`` (seconds per pipeline stage per backend); ``contact_sheet.png`` shows real | baseline | ours
at each offset of the first start frame.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from worldstereo_ros.evaluation.benchmark import BenchResults

_STAGES = ("render", "retrieve", "generate", "reconstruct", "align", "merge", "bank")


def _f(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _fidelity_summary(rows: list[dict]) -> list[list[str]]:
    groups: dict[tuple[int, str], list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["start"], r["method"])].append(r)
    base = {s: np.mean([r["psnr_full"] for r in g]) for (s, m), g in groups.items() if m.startswith("baseline")}
    out = []
    for (start, method), g in groups.items():
        mean = float(np.mean([r["psnr_full"] for r in g]))
        gain = "" if method.startswith("baseline") or start not in base else f"{mean - base[start]:+.2f}"
        out.append([str(start), method, _f(mean), gain, _f(np.mean([r["ssim_full"] for r in g]), 3),
                    _f(np.mean([r["psnr_imagined"] for r in g])),
                    _f(np.nanmean([r["sharpness_imagined"] for r in g]))])
    return out


def markdown(results: BenchResults | dict) -> str:
    """All sections as markdown tables (sections without rows are left out)."""
    res = results.to_json() if isinstance(results, BenchResults) else results
    parts = []
    if res["geometry"]:
        parts.append("### Geometry: cache vs TSDF reference of the ground-truth frames\n\n" + _table(
            ["start", "frames", "method", "accuracy", "completeness", "F1@2cm", "F1@5cm", "F1@10cm", "Chamfer",
             "points", "time"],
            [[str(r["start"]), r["frames"], r["method"], f"{_f(r['accuracy_cm'])} cm", f"{_f(r['completeness_cm'])} cm",
              _f(r["f1_2cm"], 3), _f(r["f1_5cm"], 3), _f(r["f1_10cm"], 3), f"{_f(r['chamfer_cm'])} cm",
              str(r["points"]), f"{_f(r['seconds'], 1)} s"] for r in res["geometry"]]))
    if res["camera"]:
        parts.append("### Camera accuracy: path estimated from the generated frames vs the commanded path\n\n"
                     + _table(["start", "frames", "method", "RotErr", "TransErr", "ATE", "tracked"],
                              [[str(r["start"]), str(r["frames"]), r["method"], f"{_f(r['rot_err_deg'])} deg",
                                _f(r["trans_err"], 3), f"{_f(r['ate_cm'])} cm", f"{r['tracked']:.0%}"]
                               for r in res["camera"]]))
    if res["consistency"]:
        rows = res["consistency"]
        parts.append("### Consistency: two routes to the same pose (PSNR / SSIM between their views there)\n\n"
                     + _table(["backend", "start", "memory", "PSNR orbit / up", "mean PSNR", "mean SSIM",
                               "imagined at check poses", "time"],
                              [[r["backend"], str(r["start"]), r["memory"],
                                f"{_f(r['psnr_db'][0])} / {_f(r['psnr_db'][1])} dB", f"{_f(r['mean_psnr_db'])} dB",
                                _f(r["mean_ssim"], 3), f"{r['imagined_fraction']:.0%}", f"{_f(r['seconds'], 1)} s"]
                               for r in rows]))
    if res["fidelity"]:
        parts.append("### View fidelity at ground-truth poses (means over offsets)\n\n" + _table(
            ["start", "method", "PSNR full", "gain", "SSIM full", "PSNR imagined", "sharpness imagined"],
            _fidelity_summary(res["fidelity"])))
        parts.append("Per offset:\n\n" + _table(
            ["start", "offset", "holes", "method", "PSNR full / observed / imagined", "SSIM full / imagined",
             "sharpness imagined"],
            [[str(r["start"]), str(r["offset"]), f"{r['holes']:.0%}", r["method"],
              f"{_f(r['psnr_full'])} / {_f(r['psnr_observed'])} / {_f(r['psnr_imagined'])}",
              f"{_f(r['ssim_full'], 3)} / {_f(r['ssim_imagined'], 3)}", _f(r["sharpness_imagined"])]
             for r in res["fidelity"]]))
    if res["stereo"]:
        parts.append("### Stereo: right view from the left image + depth\n\n" + _table(
            ["pair", "method", "holes", "PSNR full / observed / imagined", "SSIM full", "sharpness imagined"],
            [[r["pair"], r["method"], f"{r['holes']:.0%}",
              f"{_f(r['psnr_full'])} / {_f(r['psnr_observed'])} / {_f(r['psnr_imagined'])}", _f(r["ssim_full"], 3),
              _f(r["sharpness_imagined"])] for r in res["stereo"]]))
    if res["speed"]:
        parts.append("### Speed (4 trajectories from the procedural snapshot)\n\n" + _table(
            ["backend", "views", "size", "total", "views/s", "peak RSS", *_STAGES],
            [[r["backend"], str(r["views"]), r["size"], f"{_f(r['total_s'])} s", _f(r["fps"], 1),
              f"{_f(r['peak_rss_mb'], 0)} MiB", *[_f(r.get(f"{s}_s")) for s in _STAGES]] for r in res["speed"]]))
    return "\n\n".join(parts) + "\n"


def _plot_fidelity(rows: list[dict], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    starts = sorted({r["start"] for r in rows})
    for k, method in enumerate(methods):
        colour = f"C{k}"
        offsets = sorted({r["offset"] for r in rows if r["method"] == method})
        for s in starts:
            pts = [(r["offset"], r["psnr_full"]) for r in rows if r["method"] == method and r["start"] == s]
            if pts:
                ax.plot(*zip(*sorted(pts)), color=colour, alpha=0.3, lw=1)
        means = [np.mean([r["psnr_full"] for r in rows if r["method"] == method and r["offset"] == o])
                 for o in offsets]
        ax.plot(offsets, means, color=colour, lw=2.5, marker="o", label=f"{method} (mean)")
    ax.set_xlabel("frame offset from the start frame")
    ax.set_ylabel("full-frame PSNR (dB)")
    ax.set_title(f"View fidelity, starts {', '.join(map(str, starts))} (thin: one start)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _plot_consistency(rows: list[dict], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.4, 0.9 * len(rows)), 3.6), dpi=100)
    labels = [f"{r['memory']}\nframe {r['start']}" + (f"\n{r['backend']}" if len({x['backend'] for x in rows}) > 1
                                                       else "") for r in rows]
    x = np.arange(len(rows))
    for j, name in enumerate(("orbit", "up")):
        ax.bar(x + (j - 0.5) * 0.35, [r["psnr_db"][j] for r in rows], 0.35, label=f"check pose: {name}")
    groups: dict[tuple, list[int]] = defaultdict(list)
    for k, r in enumerate(rows):
        groups[(r["backend"], r["start"])].append(k)
    for n, ks in enumerate(groups.values()):  # one line per run: none -> GGM -> GGM+SSM
        ax.plot(ks, [rows[k]["mean_psnr_db"] for k in ks], "k-o", label="mean" if n == 0 else None)
    ax.set_xticks(x, labels)
    ax.set_ylabel("PSNR between the two routes (dB)")
    ax.set_ylim(min(min(r["psnr_db"]) for r in rows) - 3, max(max(r["psnr_db"]) for r in rows) + 2)
    ax.set_title("Consistency at shared poses: no memory / GGM / GGM+SSM")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _plot_timing(rows: list[dict], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 1.4 + 0.5 * len(rows)), dpi=100)
    left = np.zeros(len(rows))
    for k, stage in enumerate(("initialize", *_STAGES)):
        widths = np.array([r.get(f"{stage}_s", 0.0) or 0.0 for r in rows])
        ax.barh([r["backend"] for r in rows], widths, left=left, color=f"C{k}", label=stage)
        left += widths
    ax.set_xlabel(f"seconds ({rows[0]['views']} views at {rows[0]['size']})")
    ax.set_title("Time per pipeline stage")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def write_report(results: BenchResults, out: str | Path) -> dict[str, Path]:
    """Write ``results.md``, ``results.json``, the plots and the contact sheet into ``out``; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    from worldstereo_ros.io.images import contact_sheet, write_rgb_png

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"results_md": out / "results.md", "results_json": out / "results.json"}
    paths["results_md"].write_text(markdown(results))
    paths["results_json"].write_text(json.dumps(results.to_json(), indent=1) + "\n")
    if results.fidelity:
        paths["psnr_vs_offset"] = out / "psnr_vs_offset.png"
        _plot_fidelity(results.fidelity, paths["psnr_vs_offset"])
    if results.consistency:
        paths["consistency"] = out / "consistency.png"
        _plot_consistency(results.consistency, paths["consistency"])
    if results.speed:
        paths["timing"] = out / "timing.png"
        _plot_timing(results.speed, paths["timing"])
    if results.images:
        real, base, ours = (np.stack(x) for x in zip(*results.images))
        n = real.shape[0]
        cfg = results.config
        offsets = sorted({r["offset"] for r in results.fidelity if r["start"] == cfg["starts"][0]})
        at = f"at frames {cfg['starts'][0]} + {', '.join(str(o) for o in offsets)}"
        sheet = contact_sheet([(f"real {at}", real), ("baseline: z-buffer + Telea", base),
                               (f"ours: {cfg['backends'][0]}, from frame {cfg['starts'][0]} alone", ours)],
                              columns=n, thumb_width=224, show_indices=False)
        paths["contact_sheet"] = write_rgb_png(out / "contact_sheet.png", sheet)
    return paths
