"""The report's charts, drawn with matplotlib's Agg canvas and inlined as PNG data URIs.

No pyplot: each chart is its own `Figure` on an Agg canvas, so drawing a report touches no
global backend state of the process that asked for it (the pipeline runs in-process). PNGs are
written without a Software tag, so the same run gives the same bytes.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as MplFigure
from matplotlib.ticker import MaxNLocator

from alignlab.report.blocks import Figure

DPI = 144  # drawn at 1.5x the CSS size so text stays sharp on dense screens
CSS_DPI = 96
KEPT = "#2e7d32"
REJECTED = "#c62828"
ACCENT = "#1f5fa8"
SELECTED = "#e07b00"
PALETTE = ["#1f5fa8", "#e07b00", "#2e7d32", "#8e44ad", "#c62828", "#00838f", "#6d4c41", "#ad1457",
           "#546e7a", "#9e9d24"]
STYLE = {
    "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
    "grid.color": "#e3e6ea", "grid.linewidth": 0.8, "axes.edgecolor": "#9aa3ad",
    "axes.axisbelow": True, "svg.hashsalt": "alignlab",
}


def _new(width: float, height: float, nrows: int = 1, ncols: int = 1, **kw) -> tuple[MplFigure, list]:
    fig = MplFigure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, [ax for row in axes for ax in row]


def _figure(fig: MplFigure, alt: str, caption: str = "") -> Figure:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    src = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return Figure(src=src, alt=alt, width=round(fig.get_figwidth() * CSS_DPI), caption=caption)


def _style(line_count: int) -> dict:
    """Markers when there are few points, so a one-step run still shows something."""
    return {"marker": "o", "markersize": 4} if line_count <= 30 else {}


def _short(label: str, limit: int = 38) -> str:
    """A leaf path's last components that fit in `limit` characters ("…/reading/fact_extraction")."""
    if len(label) <= limit:
        return label
    parts = label.split("/")
    while len(parts) > 1 and len("…/" + "/".join(parts)) > limit:
        parts.pop(0)
    tail = "/".join(parts)
    return "…/" + tail if len(tail) <= limit else "…" + tail[-(limit - 1):]


# ---------------------------------------------------------------- data

def funnel_bars(leaves: Sequence[str], segments: Mapping[str, Sequence[int]], alt: str) -> Figure:
    """Horizontal stacked bars, one per leaf: what was kept, then what each reason removed."""
    with rc_context(STYLE):
        fig, (ax,) = _new(8.5, 1.2 + 0.45 * len(leaves) + 0.2 * -(-len(segments) // 3))
        left = [0] * len(leaves)
        y = list(range(len(leaves)))
        reds = ["#c62828", "#ef6c00", "#f9a825", "#ad1457", "#6a1b9a", "#8d6e63", "#d84315", "#b71c1c"]
        for i, (name, values) in enumerate(segments.items()):
            color = KEPT if i == 0 else reds[(i - 1) % len(reds)]
            ax.barh(y, values, left=left, color=color, label=name, height=0.6)
            left = [a + b for a, b in zip(left, values)]
        ax.set_yticks(y, [_short(leaf) for leaf in leaves])
        ax.invert_yaxis()
        ax.set_xlabel("candidates")
        ax.grid(axis="y", visible=False)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        handles, labels = ax.get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=min(3, len(segments)), frameon=False)
        return _figure(fig, alt)


def judge_histograms(scores: Mapping[str, tuple[Sequence[float], Sequence[float]]],
                     thresholds: Mapping[str, float], alt: str) -> Figure:
    """One histogram per judge: accepted and rejected candidates stacked, the threshold marked."""
    names = list(scores)
    ncols = min(3, len(names))
    nrows = -(-len(names) // ncols)
    everything = [s for acc, rej in scores.values() for s in (*acc, *rej)]
    low, high = min([1.0, *everything]), max([5.0, *everything])
    bins = [low + i * (high - low) / 16 for i in range(17)]
    with rc_context(STYLE):
        fig, axes = _new(8.5, 2.3 * nrows + 0.3, nrows, ncols)
        for ax, name in zip(axes, names):
            accepted, rejected = scores[name]
            ax.hist([list(accepted), list(rejected)], bins=bins, stacked=True, color=[KEPT, REJECTED],
                    label=["in accepted samples", "in rejected candidates"])
            if name in thresholds:
                ax.axvline(thresholds[name], color="#333", linestyle="--", linewidth=1)
                ax.annotate(f"threshold {thresholds[name]:g}", (thresholds[name], 1),
                            xycoords=("data", "axes fraction"), xytext=(3, -10), textcoords="offset points",
                            fontsize=7, color="#333")
            ax.set_title(f"{name} (n={len(accepted) + len(rejected)})")
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("score")
            ax.grid(axis="x", visible=False)
        for ax in axes[len(names):]:
            ax.set_visible(False)
        axes[0].set_ylabel("candidates")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=2, frameon=False)
        return _figure(fig, alt)


def mix_bars(phases: Mapping[str, Mapping[str, tuple[int, int]]], alt: str) -> Figure:
    """Per phase, rows and tokens stacked by source."""
    names = list(phases)
    sources = list(dict.fromkeys(s for p in phases.values() for s in p))
    with rc_context(STYLE):
        long_names = any(len(s) > 40 for s in sources)
        legend_rows = len(sources) if long_names else -(-len(sources) // 2)
        fig, axes = _new(8.5, 1.2 + 0.5 * len(names) + 0.2 * legend_rows, 1, 2)
        for ax, index, label in ((axes[0], 0, "rows"), (axes[1], 1, "tokens")):
            left = [0] * len(names)
            for i, source in enumerate(sources):
                values = [phases[p].get(source, (0, 0))[index] for p in names]
                ax.barh(names, values, left=left, color=PALETTE[i % len(PALETTE)], label=source, height=0.6)
                left = [a + b for a, b in zip(left, values)]
            ax.set_xlabel(label)
            ax.invert_yaxis()
            ax.grid(axis="y", visible=False)
        axes[1].set_yticks([])
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=1 if long_names else min(2, len(sources)),
                   frameon=False)
        return _figure(fig, alt)


def counts_bars(counts: Mapping[str, int], xlabel: str, alt: str, color: str = ACCENT) -> Figure:
    with rc_context(STYLE):
        fig, (ax,) = _new(4.2, 2.4)
        keys = list(counts)
        ax.bar(keys, [counts[k] for k in keys], color=color, width=0.6)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("pairs")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(axis="x", visible=False)
        return _figure(fig, alt)


# ---------------------------------------------------------------- training

def _mark_checkpoints(ax, checkpoints: Sequence[tuple[int, str, float | None]], selected: str | None) -> None:
    for step, name, _score in checkpoints:
        chosen = name == selected
        ax.axvline(step, color=SELECTED if chosen else "#9aa3ad", linestyle="-" if chosen else ":",
                   linewidth=1.4 if chosen else 1, zorder=1)


def curves(metrics: Sequence[Mapping[str, float]], panels: Sequence[tuple[str, Sequence[str]]],
           checkpoints: Sequence[tuple[int, str, float | None]], selected: str | None, alt: str,
           ncols: int = 2) -> Figure:
    """Per panel (title, metric keys): each key against the optimizer step; checkpoints as
    dotted lines, the selected one solid orange."""
    steps = [m.get("step", i + 1) for i, m in enumerate(metrics)]
    nrows = -(-len(panels) // ncols)
    with rc_context(STYLE):
        fig, axes = _new(8.5, 2.5 * nrows + 0.2, nrows, ncols, sharex=True)
        for ax, (title, keys) in zip(axes, panels):
            for i, key in enumerate(keys):
                points = [(s, m[key]) for s, m in zip(steps, metrics) if isinstance(m.get(key), int | float)]
                if points:
                    xs, ys = zip(*points)
                    ax.plot(xs, ys, color=PALETTE[i % len(PALETTE)], label=key, linewidth=1.5, **_style(len(xs)))
            _mark_checkpoints(ax, checkpoints, selected)
            ax.set_title(title)
            if len(keys) > 1:
                ax.legend(frameon=False)
            if title.startswith("learning rate"):
                ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        for ax in axes[len(panels):]:
            ax.set_visible(False)
        if steps and max(steps) - min(steps) < 4:  # a few steps: whole-number ticks around them
            axes[0].set_xlim(min(steps) - 1, max(steps) + 1)
        for ax in axes[-ncols:]:
            ax.set_xlabel("optimizer step")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        return _figure(fig, alt)


# ---------------------------------------------------------------- evaluation

def grouped_bars(models: Sequence[str], metrics: Mapping[str, Sequence[float | None]], alt: str) -> Figure:
    """One small panel per metric (each on its own scale), one bar per model, values printed."""
    names = list(metrics)
    with rc_context(STYLE):
        fig, axes = _new(8.5, 2.8, 1, max(1, len(names)))
        for ax, name in zip(axes, names):
            values = [v if v is not None else 0.0 for v in metrics[name]]
            bars = ax.bar(list(models), values, color=[PALETTE[i % len(PALETTE)] for i in range(len(models))],
                          width=0.6)
            ax.bar_label(bars, labels=["–" if v is None else f"{v:.3f}" for v in metrics[name]], fontsize=8,
                         padding=2)
            ax.set_title(name)
            ax.margins(y=0.18)
            ax.grid(axis="x", visible=False)
            ax.tick_params(axis="x", labelrotation=15 if len(models) > 3 else 0)
        return _figure(fig, alt)
