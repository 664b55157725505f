"""PNG figures (matplotlib, Agg backend): one per session and the study overview.

Sign convention in every CPM axis label: CPM_abs = TS_pre - TS_post (positive = inhibition).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cpm_session.analysis.constants import FIGSIZE_SESSION, FIGSIZE_STUDY, PLOT_DPI, SIGN_TAG  # noqa: E402
from cpm_session.analysis.summarize import immersions  # noqa: E402
from cpm_session.record.folder import read_events  # noqa: E402

PHASE_COLORS = {"calibration": "#7f7f7f", "verification": "#9467bd", "ts_pre": "#1f77b4", "cs": "#17becf",
                "ts_post": "#d62728", "ppt": "#8c564b", "control_cs": "#bcbd22", "control_ts_post": "#e377c2"}
ARM_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f"]
CALIBRATION_TARGET = 60.0
STOP_EVENTS = {"emergency_stop": "emergency stop", "device_fault": "device fault", "pause": "pause",
               "resume_session": "session resumed"}


def _devices(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(path / "devices.csv", usecols=["t", "quantity", "value"])
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return pd.DataFrame(columns=["t", "quantity", "value"])
    df["t"] = pd.to_numeric(df["t"], errors="coerce")
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    return df.dropna()


def _draw_traces(d: Path, events: list[dict[str, Any]], ax: Any, axr: Any) -> None:
    """Overlay the thermode's own 100 Hz trace (thermode_trace.csv: zone mean per sample) on the temperature
    axis and every continuous rating (continuous_ratings.csv, placed at its stimulus onset) on the rating axis."""
    import csv

    trace = d / "thermode_trace.csv"
    if trace.is_file():
        ts, means = [], []
        with open(trace, newline="", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                try:
                    zones = [float(r[f"zone{i}_c"]) for i in range(1, 6)]
                    ts.append(float(r["t"]))
                    means.append(sum(zones) / len(zones))
                except (KeyError, ValueError):
                    continue
        if ts:
            ax.plot(ts, means, ".", ms=1.0, color="#ff7f0e", label="thermode trace (device stream)")
    cont = d / "continuous_ratings.csv"
    if cont.is_file():
        onsets = {f"{e.get('phase')}:{e.get('trial')}": float(e["onset_t"]) for e in events
                  if e.get("event") == "stimulus" and e.get("onset_t") is not None}
        onsets.update({f"cs:{1}": float(e["t"]) for e in events if e.get("event") == "cold_pressor_start"})
        series: dict[str, tuple[list[float], list[float]]] = {}
        with open(cont, newline="", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                sid = str(r.get("stimulus", ""))
                base = onsets.get(":".join(sid.split(":")[:2]))
                try:
                    t, v = float(r["t"]), float(r["value"])
                except (KeyError, ValueError):
                    continue
                if base is not None:
                    xs, ys = series.setdefault(sid, ([], []))
                    xs.append(base + t)
                    ys.append(v)
        for k, (xs, ys) in enumerate(series.values()):
            axr.plot(xs, ys, color="#9467bd", lw=0.8, label="continuous rating" if k == 0 else None)


def session_figure(session_dir: str | Path, out_png: str | Path) -> Path:
    """Draw thermode trace with stimulus onsets and ratings, bath temperature and calibration fit; save a PNG."""
    d = Path(session_dir)
    try:
        events, _ = read_events(d / "events.jsonl")
    except OSError:
        events = []
    dev = _devices(d)
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=FIGSIZE_SESSION, gridspec_kw={"height_ratios": [1.3, 1, 1.2]})
    start = next((e for e in events if e.get("event") == "session_start"), {})
    fig.suptitle(f"{start.get('participant', d.parent.name)} / {start.get('visit', d.name)}  ({d.name})", fontsize=11)

    # 1. thermode (or algometer) trace, stimulus onsets, ratings
    pressure = any(e.get("event") == "stimulus" and e.get("modality") == "pressure" for e in events)
    qty, unit, what = ("pressure_kpa", "kPa", "algometer") if pressure else ("zone_mean_c", "°C", "thermode")
    th = dev[dev["quantity"] == qty]
    ax1.plot(th["t"], th["value"], color="#444444", lw=0.8, label=f"{what} ({unit})")
    for ev in events:
        if ev.get("event") == "stimulus" and ev.get("onset_t") is not None:
            ax1.axvline(float(ev["onset_t"]), color=PHASE_COLORS.get(str(ev.get("phase")), "#999999"), lw=0.7, alpha=0.6)
    for ev in events:
        kind = ev.get("event")
        if kind in STOP_EVENTS and ev.get("t") is not None:
            color = "#2ca02c" if kind == "resume_session" else "#d62728"
            ax1.axvline(float(ev["t"]), color=color, ls="--", lw=1.2, label=STOP_EVENTS[str(kind)])
    ax1.set_ylabel(f"{what} ({unit})")
    ax1.set_xlabel("session time (s)")
    axr = ax1.twinx()
    by_phase: dict[str, list[tuple[float, float]]] = {}
    for ev in events:
        if ev.get("event") != "rating" or ev.get("rating") in (None, ""):
            continue
        x = ev.get("prompt_t", ev.get("onset_t", ev.get("t", 0.0)))
        by_phase.setdefault(str(ev.get("phase")), []).append((float(x or 0.0), float(ev["rating"])))
    for ph, xy in by_phase.items():
        xs, ys = zip(*xy, strict=True)
        axr.scatter(xs, ys, s=18, color=PHASE_COLORS.get(ph, "k"), zorder=3, label=f"rating: {ph}")
    _draw_traces(d, events, ax1, axr)
    axr.set_ylim(-5, 105)
    axr.set_ylabel("rating (0-100)")
    h1, l1 = ax1.get_legend_handles_labels()
    h2, l2 = axr.get_legend_handles_labels()
    ax1.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper left", ncol=3)
    ax1.set_title(f"{what.capitalize()} trace (vertical lines: stimulus onsets) and ratings", fontsize=9)

    # 2. bath
    bath = dev[dev["quantity"] == "bath_c"]
    ax2.plot(bath["t"], bath["value"], color="#17becf", lw=0.8, label="bath (°C)")
    spans = immersions(events)
    for k, (a, b) in enumerate(spans):
        b = b if b is not None else (float(bath["t"].max()) if len(bath) else a)
        ax2.axvspan(a, b, color="#17becf", alpha=0.15, label="hand in water" if k == 0 else None)
    if spans and len(bath):
        ax2.set_xlim(max(0.0, spans[0][0] - 120), (spans[-1][1] or float(bath["t"].max())) + 120)
    for e in events:
        if e.get("event") == "withdrawal":
            ax2.axvline(float(e["t"]), color="#d62728", ls="--", lw=1, label="early withdrawal")
    ax2.set_ylabel("bath (°C)")
    ax2.set_xlabel("session time (s)")
    ax2.legend(fontsize=7, loc="upper right")
    ax2.set_title("Cold-water bath during the cold pressor", fontsize=9)

    # 3. calibration fit (thermal) or pressure pain thresholds (pressure)
    if pressure:
        _ppt_panel(ax3, events)
    else:
        _calibration_panel(ax3, events)
    fig.subplots_adjust(left=0.08, right=0.92, top=0.93, bottom=0.06, hspace=0.45)
    out = Path(out_png)
    fig.savefig(out, dpi=PLOT_DPI)
    plt.close(fig)
    return out


def _calibration_panel(ax: Any, events: list[dict[str, Any]]) -> None:
    pts = [(float(e["intensity"]), float(e["rating"])) for e in events
           if e.get("event") == "rating" and e.get("phase") in ("calibration", "verification")
           and e.get("rating") not in (None, "") and e.get("intensity") not in (None, "")]
    fits = [e for e in events if e.get("event") == "calibration_fit"]
    result = next((e for e in reversed(events) if e.get("event") == "calibration_result"), None)
    if pts:
        x, y = zip(*pts, strict=True)
        ax.scatter(x, y, color="#7f7f7f", s=20, label="calibration / verification ratings", zorder=3)
    if fits:
        f = fits[-1]
        slope = f.get("slope_per_c", f.get("slope"))
        icpt = f.get("intercept")
        if slope is not None and icpt is not None and pts:
            xs = np.linspace(min(p[0] for p in pts) - 0.5, max(p[0] for p in pts) + 0.5, 50)
            r2 = f.get("r2")
            ax.plot(xs, float(slope) * xs + float(icpt), color="#1f77b4",
                    label=f"fit: {float(slope):.1f} points/°C" + (f", R² {float(r2):.2f}" if r2 is not None else ""))
    ax.axhline(CALIBRATION_TARGET, color="#2ca02c", ls=":", lw=1, label="target rating 60")
    if result is not None:
        chosen = result.get("pain60_c", result.get("ts_intensity"))
        if chosen is not None:
            ax.axvline(float(chosen), color="#d62728", lw=1.2, label=f"chosen Pain-60 {float(chosen):.2f} °C")
    if not pts and not fits:
        carried = next((e for e in events if e.get("event") == "baseline_intensity"), None)
        note = "no calibration in this session"
        if carried is not None and carried.get("ts_intensity") is not None:
            note += f"\nTS intensity carried over from the baseline visit: {float(carried['ts_intensity']):.2f} °C"
        ax.text(0.5, 0.5, note, ha="center", va="center", transform=ax.transAxes)
    ax.set_ylim(-5, 105)
    ax.set_xlabel("thermode temperature (°C)")
    ax.set_ylabel("rating (0-100)")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title("Calibration: ratings vs temperature, fit and chosen Pain-60", fontsize=9)


def _ppt_panel(ax: Any, events: list[dict[str, Any]]) -> None:
    ppts = [(int(e.get("trial", i + 1)), float(e["kpa"])) for i, e in enumerate(x for x in events if x.get("event") == "ppt")
            if e.get("kpa") is not None]
    result = next((e for e in reversed(events) if e.get("event") in ("calibration_result", "baseline_intensity")), None)
    if ppts:
        trials, kpa = zip(*ppts, strict=True)
        ax.plot(trials, kpa, "o", color="#8c564b", label="pressure pain threshold (kPa)")
        ax.axhline(sum(kpa) / len(kpa), color="#8c564b", ls=":", lw=1, label=f"mean PPT {sum(kpa) / len(kpa):.0f} kPa")
    if result is not None and result.get("ts_intensity") is not None:
        ax.axhline(float(result["ts_intensity"]), color="#d62728", lw=1.2,
                   label=f"TS pressure {float(result['ts_intensity']):.0f} kPa")
    if not ppts:
        ax.text(0.5, 0.5, "no PPT measurement in this session", ha="center", va="center", transform=ax.transAxes)
    if ppts:
        ax.set_xticks(sorted({t for t, _ in ppts}))
        ax.set_xlim(min(t for t, _ in ppts) - 0.5, max(t for t, _ in ppts) + 0.5)
    ax.set_xlabel("PPT measurement")
    ax.set_ylabel("pressure (kPa)")
    ax.legend(fontsize=7, loc="best")
    ax.set_title("Pressure pain thresholds and the chosen TS pressure", fontsize=9)


def study_figure(wide: pd.DataFrame, out_png: str | Path, *, base_label: str = "baseline",
                 post_label: str = "post", reference: str | None = None) -> Path:
    """Draw baseline vs post CPM_abs per participant by arm and the distribution of the change; save a PNG."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=FIGSIZE_STUDY)
    d = wide.dropna(subset=["cpm_abs_base", "cpm_abs_post"]) if {"cpm_abs_base", "cpm_abs_post"} <= set(wide.columns) else wide.iloc[0:0]
    arms = sorted(d["arm"].dropna().unique(), key=lambda a: (a != reference, a)) if len(d) else []
    width = 0.8 / max(1, len(arms))
    changes, labels = [], []
    for i, arm in enumerate(arms):
        g = d[d["arm"] == arm]
        off = (i - (len(arms) - 1) / 2) * width
        c = ARM_COLORS[i % len(ARM_COLORS)]
        for _, r in g.iterrows():
            ax1.plot([0 + off, 1 + off], [r["cpm_abs_base"], r["cpm_abs_post"]], color=c, alpha=0.35, lw=0.8)
        ax1.plot([0 + off, 1 + off], [g["cpm_abs_base"].mean(), g["cpm_abs_post"].mean()], color=c, lw=3,
                 marker="o", label=f"{arm} (n={len(g)}, mean)")
        changes.append((g["cpm_abs_post"] - g["cpm_abs_base"]).to_numpy())
        labels.append(f"{arm}\n(n={len(g)})")
    ax1.axhline(0, color="k", lw=0.6)
    ax1.set_xticks([0, 1], [base_label, post_label])
    ax1.set_ylabel(f"CPM_abs = TS_pre - TS_post\n{SIGN_TAG}")
    ax1.set_title("CPM per participant, baseline vs post", fontsize=10)
    if arms:
        ax1.legend(fontsize=8)
    if changes:
        ax2.boxplot(changes, showfliers=False)
        ax2.set_xticks(range(1, len(labels) + 1), labels)
        rng = np.random.default_rng(0)
        for i, ch in enumerate(changes, start=1):
            ax2.scatter(i + rng.uniform(-0.12, 0.12, len(ch)), ch, s=14, alpha=0.7, color=ARM_COLORS[(i - 1) % len(ARM_COLORS)])
    else:
        ax2.text(0.5, 0.5, "no participant with both visits", ha="center", va="center", transform=ax2.transAxes)
    ax2.axhline(0, color="k", lw=0.6)
    ax2.set_ylabel(f"change in CPM_abs (post - baseline)\n{SIGN_TAG}")
    ax2.set_title("Distribution of CPM change by arm", fontsize=10)
    fig.subplots_adjust(left=0.1, right=0.98, top=0.92, bottom=0.16, wspace=0.35)
    out = Path(out_png)
    fig.savefig(out, dpi=PLOT_DPI)
    plt.close(fig)
    return out
