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

from worldstereo_ros.evaluation.bench_config import THRESHOLDS_M, BenchResults
from worldstereo_ros.evaluation.consistency import BASELINE as CONSISTENCY_BASELINE
from worldstereo_ros.evaluation.consistency import MEMORIES, accuracy_rises, agreement_rises
from worldstereo_ros.evaluation.fill_protocol import BASELINE as FILL_BASELINE
from worldstereo_ros.evaluation.fill_protocol import summarise
from worldstereo_ros.io.images import contact_sheet, write_rgb_png
from worldstereo_ros.pipeline import STAGES

_STAGES = STAGES[:-1]  # every stage but "done"


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


def _geometry_text(rows: list[dict], f1_keys: list[str]) -> str:
    """Where imagination lowers F1 against the start frame alone, threshold by threshold."""
    floors = {r["start"]: r for r in rows if "(floor)" in r["method"]}
    lines = []
    for key in f1_keys:
        lower = [f"{r['method']} from {r['start']} ({floors[r['start']][key]:.3f} -> {r[key]:.3f})"
                 for r in rows if "(floor)" not in r["method"] and r["start"] in floors
                 and r[key] < floors[r["start"]][key]]
        label = key.replace("f1_", "F1@")
        lines.append(f"- {label}: imagination lowers it for " + "; ".join(lower) if lower
                     else f"- {label}: imagination never lowers it")
    return ("Imagination adds completeness (the cache covers more of the reference) and costs accuracy (imagined "
            "points lie farther from it than observed ones); F1 at each threshold against the start frame alone:\n\n"
            + "\n".join(lines))


def _consistency_text(rows: list[dict]) -> str:
    table = _table(
        ["source", "backend", "memory", "check poses", "vs truth A (dB)", "vs truth B (dB)", "accuracy",
         "SSIM A / B", "agreement A-B", "imagined", "time"],
        [[r["source"], r["backend"], r["memory"], ", ".join(r["checks"]),
          " / ".join(_f(v) for v in r["psnr_a_db"]), " / ".join(_f(v) for v in r["psnr_b_db"]),
          f"{_f(r['accuracy_db'])} dB", f"{_f(float(np.mean(r['ssim_a'])), 3)} / {_f(float(np.mean(r['ssim_b'])), 3)}",
          "n/a" if r["memory"] == CONSISTENCY_BASELINE else f"{_f(r['mean_agreement_db'])} dB",
          f"{r['imagined_fraction']:.0%}", f"{_f(r['seconds'], 1)} s"] for r in rows])
    verdicts = []
    for key in dict.fromkeys((r["source"], r["backend"]) for r in rows):
        group = [r for r in rows if (r["source"], r["backend"]) == key]
        acc = {r["memory"]: r["accuracy_db"] for r in group}
        agr = {r["memory"]: r["mean_agreement_db"] for r in group}
        verdicts.append(f"- {key[1]}, {key[0]}: accuracy vs truth "
                        f"{' / '.join(_f(acc.get(m)) for m in MEMORIES)} dB (none / GGM / GGM+SSM; z-buffer + Telea "
                        f"{_f(acc.get(CONSISTENCY_BASELINE))} dB): target none < GGM < GGM+SSM "
                        f"**{'met' if accuracy_rises(group) else 'not met'}**; agreement "
                        f"{' / '.join(_f(agr.get(m)) for m in MEMORIES)} dB "
                        f"({'rises' if agreement_rises(group) else 'does not rise'}; agreement alone proves nothing)")
    return ("### Consistency: two routes to each check pose, both scored against the truth\n\n" + table
            + "\n\nCheck poses are never keyframe poses (each route passes its check pose and goes on). Truth: the "
              "real frame at the check pose (data) or the true render (procedural room).\n\n" + "\n".join(verdicts))


def _fill_text(rows: list[dict], skipped: list[dict]) -> str:
    summary = summarise(rows)
    table = _table(
        ["source", "method", "pairs", "holes", "PSNR holes", "gain vs Telea", "pairs won", "SSIM holes",
         "sharpness holes", "PSNR full"],
        [[r["source"], r["method"], str(r["pairs"]), f"{r['holes']:.0%}", f"{_f(r['psnr_hole'])} dB",
          "" if r["method"] == FILL_BASELINE else f"{r['gain_hole_db']:+.2f} dB",
          "" if r["method"] == FILL_BASELINE else f"{r['wins']}/{r['pairs']}", _f(r["ssim_hole"], 3),
          _f(r["sharpness_hole"]), f"{_f(r['psnr_full'])} dB"] for r in summary])
    text = ("### Fill protocol: forward-backward holes filled and scored against the frame itself\n\n" + table
            + "\n\nFrame i drawn into pose j and back; the pixels the round trip loses are filled and scored against "
              "frame i (same camera: no misregistration). Seeded pairs, offsets 5-60 frames; backends get frame j as "
              "their reference ('(no reference)': the same backend without it).")
    if skipped:
        text += "\n\nNot measured: " + "; ".join(f"{s['method']} ({s['reason']})" for s in skipped)
    return text


def markdown(results: BenchResults | dict) -> str:
    """All sections as markdown tables (sections without rows are left out)."""
    res = results.to_json() if isinstance(results, BenchResults) else results
    parts = []
    if res["geometry"]:
        f1_keys = [f"f1_{round(100 * t)}cm" for t in THRESHOLDS_M]
        parts.append("### Geometry: cache vs TSDF reference of the ground-truth frames\n\n" + _table(
            ["start", "frames", "method", "accuracy", "completeness",
             *[f"F1@{round(100 * t)}cm" for t in THRESHOLDS_M], "Chamfer", "points", "time"],
            [[str(r["start"]), r["frames"], r["method"], f"{_f(r['accuracy_cm'])} cm", f"{_f(r['completeness_cm'])} cm",
              *[_f(r[k], 3) for k in f1_keys], f"{_f(r['chamfer_cm'])} cm",
              str(r["points"]), f"{_f(r['seconds'], 1)} s"] for r in res["geometry"]]))
        parts.append(_geometry_text(res["geometry"], f1_keys))
    if res["camera"]:
        parts.append("### Camera accuracy: path estimated from the generated frames vs the commanded path\n\n"
                     + _table(["start", "frames", "method", "RotErr", "TransErr", "ATE", "tracked", "informative"],
                              [[str(r["start"]), str(r["frames"]), r["method"], f"{_f(r['rot_err_deg'])} deg",
                                _f(r["trans_err"], 3), f"{_f(r['ate_cm'])} cm", f"{r['tracked']:.0%}",
                                "yes" if r.get("informative", True) else "no: frames are cache renders"]
                               for r in res["camera"]])
                     + "\n\nThe plain cache render (the start frame's points drawn at the commanded poses, no "
                       "generator) is the row to beat. For backends whose frames are renders of the cache at exactly "
                       "the commanded pose (informative: no) this section cannot fail and says nothing about camera "
                       "control; it is informative only for backends that draw their own frames.")
    if res["consistency"]:
        parts.append(_consistency_text(res["consistency"]))
    if res.get("fill"):
        parts.append(_fill_text(res["fill"], res.get("fill_skipped", [])))
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
    env = res.get("config", {}).get("environment")
    if env:
        cfg = res["config"]
        frames = "all frames" if cfg.get("frames") is None else f"frames {cfg['frames'][0]}-{cfg['frames'][1]}"
        parts.append(f"Run: {frames}, starts {cfg.get('starts')}; commit {env.get('commit')}"
                     f"{' with uncommitted changes' if env.get('uncommitted_changes') else ''}; "
                     + ", ".join(f"{k} {env[k]}" for k in ("python", "numpy", "torch", "opencv", "open3d",
                                                            "scikit_image", "threads") if k in env)
                     + f"; data sha256 {str(env.get('data_sha256'))[:16]}")
    return "\n\n".join(parts) + "\n"


def _plot_fidelity(rows: list[dict], path: Path) -> None:
    # lazy: pyplot is imported only after write_report has selected the Agg backend (headless)
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
    """Per source: accuracy against the truth (bars: baseline, none, GGM, GGM+SSM) and agreement (line)."""
    # lazy: pyplot is imported only after write_report has selected the Agg backend (headless)
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys((r["source"], r["backend"]) for r in rows))
    fig, ax = plt.subplots(figsize=(max(6.4, 1.6 * len(groups)), 3.8), dpi=100)
    order = [CONSISTENCY_BASELINE, *MEMORIES]
    width = 0.8 / len(order)
    for k, memory in enumerate(order):
        values = [next((r["accuracy_db"] for r in rows if (r["source"], r["backend"]) == g and r["memory"] == memory),
                       np.nan) for g in groups]
        ax.bar(np.arange(len(groups)) + (k - 1.5) * width, values, width,
               label=f"{'z-buffer + Telea' if memory == CONSISTENCY_BASELINE else memory}: vs truth")
    for n, g in enumerate(groups):
        agr = [next(r["mean_agreement_db"] for r in rows if (r["source"], r["backend"]) == g and r["memory"] == m)
               for m in MEMORIES]
        ax.plot(n + (np.arange(3) - 0.5) * width, agr, "k--o", ms=3, label="agreement A-B" if n == 0 else None)
    multi = len({g[1] for g in groups}) > 1
    ax.set_xticks(np.arange(len(groups)), [f"{s}\n{b}" if multi else s for s, b in groups], fontsize=8)
    values = [r["accuracy_db"] for r in rows] + [r["mean_agreement_db"] for r in rows
                                                 if r["mean_agreement_db"] is not None]
    values = [v for v in values if math.isfinite(v)]  # identical views score inf
    if values:  # the differences are tenths of a dB: no zero baseline
        ax.set_ylim(min(values) - 2.0, max(values) + 2.0)
    ax.set_ylabel("PSNR (dB)")
    ax.set_title("Consistency: vs truth (bars) and route agreement (dashed)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def _plot_timing(rows: list[dict], path: Path) -> None:
    # lazy: pyplot is imported only after write_report has selected the Agg backend (headless)
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
    # lazy: the backend is chosen before any pyplot import, here rather than at import time (the bench's
    # importers need not draw)
    import matplotlib

    matplotlib.use("Agg")

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
