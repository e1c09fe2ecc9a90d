"""Charts of the monthly benchmark report, as SVG images.

Every function takes a plain-data part of the report context built by
``reports.rendering.build_report_context`` (so a stored context can be drawn
again) and returns an ``<img class="chart">`` whose source is the SVG as a
``data:`` URL, ready to be placed in the HTML. An image, not inline ``<svg>``
nodes (issue 16): WeasyPrint ran the page's CSS cascade over every node of
every inline chart, about a fifth of printing a report.

Output is deterministic: the same data always gives byte-identical SVG.
Matplotlib's random ids are seeded (``svg.hashsalt``), the creation date is
left out of the metadata, the font is the DejaVu Sans that ships with
matplotlib, and text is kept as text (``svg.fonttype = "none"``) so a PDF
reader can search chart labels. Each chart's ids get a prefix, so several
charts can share one HTML document without clashing clip paths.

No chart ever names another centre: other centres are plain grey dots.
"""

import base64
import io
import math
import re

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, MultipleLocator, PercentFormatter

from .outcomes import EXPERIENCE_THRESHOLD

matplotlib.use("Agg")  # no display; figures are made with Figure() and never through pyplot

MONTH_DAYS = 30.4375

OWN = "#1f4e79"  # the centre the report is for
OWN_LIGHT = "#9dbad5"
REGISTRY = "#7f7f7f"
OTHERS = "#a6a6a6"
LIMIT_95 = "#e08a2e"
LIMIT_998 = "#b22222"
SIGNAL = "#b22222"
MARK_25 = "#2e7d32"

RC = {
    "svg.hashsalt": "hai",
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",
    "font.size": 8.5,
    "axes.titlesize": 9.5,
    "axes.titleweight": "bold",
    "axes.labelsize": 8.5,
    "axes.edgecolor": "#555555",
    "axes.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e3e3e3",
    "grid.linewidth": 0.5,
    "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5,
    "xtick.color": "#444444",
    "ytick.color": "#444444",
    "legend.fontsize": 7.5,
    "legend.frameon": False,
    "lines.linewidth": 1.2,
    "path.simplify": False,
}

_ID = re.compile(r'\bid="([^"]+)"')
_PRESENTATION = {
    "clip-path",
    "fill",
    "fill-opacity",
    "fill-rule",
    "font-family",
    "font-size",
    "font-style",
    "font-weight",
    "opacity",
    "stroke",
    "stroke-dasharray",
    "stroke-dashoffset",
    "stroke-linecap",
    "stroke-linejoin",
    "stroke-miterlimit",
    "stroke-opacity",
    "stroke-width",
    "text-anchor",
}


def _presentation_attributes(match):
    """style="fill: #fff; stroke: none" -> fill="#fff" stroke="none" (unchanged if any property is not one)."""
    pairs = []
    for declaration in match.group(1).split(";"):
        if not declaration.strip():
            continue
        name, _, value = declaration.partition(":")
        name, value = name.strip(), value.strip().replace('"', "'")
        if name not in _PRESENTATION:
            return match.group(0)
        pairs.append(f'{name}="{value}"')
    return " ".join(pairs)


def _svg_element(fig, prefix):
    """Serialise a figure to an SVG element with ids unique to ``prefix``."""
    buffer = io.StringIO()
    with matplotlib.rc_context(RC):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.DOTALL)
    ids = set(_ID.findall(text))

    def rename(match):
        name = match.group(2)
        return f"{match.group(1)}{prefix}-{name}" if name in ids else match.group(0)

    text = re.sub(r'(\bid=")([^"]+)', rename, text)
    text = re.sub(r"(url\(#)([^)]+)", rename, text)
    text = re.sub(r'(xlink:href="#)([^"]+)', rename, text)
    # WeasyPrint reads style="…" of inline SVG as HTML CSS too and logs every SVG-only
    # property as unknown; presentation attributes draw the same without the noise.
    text = re.sub(
        r'\s*<defs>\s*<style type="text/css">\*\{stroke-linejoin: round; stroke-linecap: butt\}</style>\s*</defs>',
        "",
        text,
        count=1,
    )
    text = re.sub(r'style="([^"]*)"', _presentation_attributes, text)
    text = text.replace("<svg ", '<svg stroke-linejoin="round" stroke-linecap="butt" ', 1)
    # The image scales to the width of the box it sits in (CSS); its size in pt and viewBox give the ratio.
    return text.strip()


CHART_IMAGE_URL = "data:image/svg+xml;base64,"


def _svg(fig, prefix):
    """The figure as an ``<img>`` of its SVG (``_svg_element``), the page's one way of holding a chart."""
    svg = _svg_element(fig, prefix).replace("<svg ", f'<svg role="img" aria-label="{prefix}" ', 1)
    source = CHART_IMAGE_URL + base64.b64encode(svg.encode()).decode("ascii")
    return f'<img class="chart" alt="{prefix}" src="{source}">'


def _figure(width_cm, height_cm):
    with matplotlib.rc_context(RC):
        return Figure(figsize=(width_cm / 2.54, height_cm / 2.54), layout="constrained")


def _percent_axis(axis):
    axis.set_major_formatter(PercentFormatter(1.0, decimals=0))


# --------------------------------------------------------------------------- funnel plot


def _draw_limits(ax, xs, bands, label_998):
    """A funnel's 95% band (shaded, dashed) and 99.8% limits (solid), from rows with lower/upper_95/998."""
    ax.fill_between(xs, [b["lower_95"] for b in bands], [b["upper_95"] for b in bands], color="#f4f4f4", lw=0)
    ax.plot(xs, [b["upper_998"] for b in bands], color=LIMIT_998, lw=0.9, label=label_998)
    ax.plot(xs, [b["lower_998"] for b in bands], color=LIMIT_998, lw=0.9)
    ax.plot(xs, [b["upper_95"] for b in bands], color=LIMIT_95, lw=0.9, ls=(0, (4, 2)), label="95% limits")
    ax.plot(xs, [b["lower_95"] for b in bands], color=LIMIT_95, lw=0.9, ls=(0, (4, 2)))


def funnel_svg(funnel, centre_code, *, prefix="funnel", width_cm=16.5, height_cm=9.0):
    """Rate against volume: every centre a dot, this one highlighted, exact 95% / 99.8% limits."""
    with matplotlib.rc_context(RC):
        fig = _figure(width_cm, height_cm)
        ax = fig.add_subplot()
        bands = funnel["bands"]
        ns = [b["n"] for b in bands]
        _draw_limits(ax, ns, bands, "99.8% limits")
        theta0 = funnel["theta0"]
        ax.axhline(theta0, color=REGISTRY, lw=0.9, ls=(0, (1, 1.5)), label=f"Registry rate {theta0:.1%}")
        others = [p for p in funnel["points"] if not p["own"]]
        if others:
            ax.scatter(
                [p["n"] for p in others],
                [p["rate"] for p in others],
                s=30,
                color=OTHERS,
                edgecolor="white",
                linewidth=0.5,
                zorder=3,
                label="Other centres (anonymous)",
            )
        own = [p for p in funnel["points"] if p["own"]]
        x_max = ns[-1] if ns else 1
        x_min = ns[0] if ns else 0
        for point in own:
            ax.scatter(
                [point["n"]],
                [point["rate"]],
                s=70,
                color=OWN,
                edgecolor="white",
                linewidth=0.8,
                zorder=4,
                label=f"{centre_code} (your centre)",
            )
            right = point["n"] > x_min + 0.7 * (x_max - x_min)
            ax.annotate(
                f"{centre_code}  {point['rate']:.1%}",
                (point["n"], point["rate"]),
                xytext=(-8 if right else 8, 6),
                textcoords="offset points",
                ha="right" if right else "left",
                fontsize=8,
                color=OWN,
                fontweight="bold",
                zorder=5,
            )
        rates = [p["rate"] for p in funnel["points"]]
        y_hi = max([*rates, theta0 * 1.5, 0.05]) * 1.15
        # Do not let the very wide mouth of the funnel squash the dots.
        y_hi = min(1.0, max(y_hi, min((b["upper_998"] for b in bands if b["n"] >= max(10, x_min)), default=y_hi)))
        ax.set_ylim(0, y_hi)
        ax.set_xlim(x_min, x_max)
        _percent_axis(ax.yaxis)
        ax.set_xlabel("Implantations at the centre (volume)")
        ax.set_ylabel(funnel["axis_label"])
        ax.set_title(funnel["title"], loc="left")
        handles, labels = ax.get_legend_handles_labels()
        order = sorted(range(len(labels)), key=lambda i: ("your centre" not in labels[i], "Other" not in labels[i], i))
        fig.legend([handles[i] for i in order], [labels[i] for i in order], loc="outside lower center", ncols=3)
    return _svg(fig, prefix)


def ratio_funnel_svg(comparison, centre_code, *, prefix="oe", width_cm=16.5, height_cm=8.0):
    """Observed/expected against the expected count: exact Poisson 95% / 99.8% limits around 1."""
    with matplotlib.rc_context(RC):
        fig = _figure(width_cm, height_cm)
        ax = fig.add_subplot()
        bands = comparison["bands"]
        es = [b["expected"] for b in bands]
        widened = " (widened for between-centre variation)" if comparison["widened"] else ""
        _draw_limits(ax, es, bands, f"99.8% limits{widened}")
        ax.axhline(1.0, color=REGISTRY, lw=0.9, ls=(0, (1, 1.5)), label="As expected (O/E = 1)")
        others = [p for p in comparison["points"] if not p["own"]]
        if others:
            ax.scatter(
                [p["expected"] for p in others],
                [p["ratio"] for p in others],
                s=30,
                color=OTHERS,
                edgecolor="white",
                linewidth=0.5,
                zorder=3,
                label="Other centres (anonymous)",
            )
        for point in (p for p in comparison["points"] if p["own"]):
            ax.scatter(
                [point["expected"]],
                [point["ratio"]],
                s=70,
                color=OWN,
                edgecolor="white",
                linewidth=0.8,
                zorder=4,
                label=f"{centre_code} (your centre)",
            )
            ax.annotate(
                f"{centre_code}  {point['ratio']:.2f}",
                (point["expected"], point["ratio"]),
                xytext=(8, 6),
                textcoords="offset points",
                fontsize=8,
                color=OWN,
                fontweight="bold",
                zorder=5,
            )
        ratios = [p["ratio"] for p in comparison["points"]]
        y_hi = max([*ratios, 2.0]) * 1.15
        ax.set_ylim(0, y_hi)
        if es:
            ax.set_xlim(es[0], es[-1])
        ax.set_xlabel("Expected count (case-mix model)")
        ax.set_ylabel("Observed / expected")
        ax.set_title(comparison["label"], loc="left")
        fig.legend(loc="outside lower center", ncols=2)
    return _svg(fig, prefix)


def vlad_svg(surgeon, *, prefix, width_cm=8.4, height_cm=5.0):
    """Cumulative expected minus observed (VLAD) by pump number, with the mark after the 25th pump."""
    with matplotlib.rc_context(RC):
        fig = _figure(width_cm, height_cm)
        ax = fig.add_subplot()
        points = surgeon["points"]
        xs = [p["sequence"] for p in points]
        ys = [p["vlad"] for p in points]
        ax.step(xs, ys, where="post", color=OWN, lw=1.1)
        ax.axhline(0, color=REGISTRY, lw=0.8, ls=(0, (1, 1.5)))
        mark = EXPERIENCE_THRESHOLD + 0.5
        if xs and xs[0] <= mark <= xs[-1]:
            ax.axvline(mark, color=MARK_25, lw=0.9)
        ax.set_xlabel("Surgeon's pump number")
        ax.set_ylabel("Expected − observed")
        ax.set_title(f"Surgeon {surgeon['code']}: VLAD", loc="left")
    return _svg(fig, prefix)


# --------------------------------------------------------------------------- CUSUM


def cusum_svg(surgeon, *, prefix, width_cm=8.4, height_cm=6.2):
    """One surgeon's Bernoulli CUSUM by pump number, h and the 25th pump marked."""
    with matplotlib.rc_context(RC):
        fig = _figure(width_cm, height_cm)
        ax = fig.add_subplot()
        points = surgeon["points"]
        xs = [p["sequence"] for p in points]
        ys = [p["value"] for p in points]
        h = surgeon["h"]
        ax.step(xs, ys, where="post", color=OWN, lw=1.1)
        events = [p for p in points if p["event"]]
        ax.plot(
            [p["sequence"] for p in events],
            [0] * len(events),
            ls="none",
            marker="|",
            ms=5,
            color="#555555",
            clip_on=False,
        )
        if h is not None:
            ax.axhline(h, color=SIGNAL, lw=0.9, ls=(0, (4, 2)))
        signals = [p for p in points if p["signal"]]
        if signals:
            ax.plot(
                [p["sequence"] for p in signals],
                [p["value"] for p in signals],
                ls="none",
                marker="o",
                ms=5,
                mfc=SIGNAL,
                mec="white",
                mew=0.6,
                zorder=4,
            )
        x_lo, x_hi = (min(xs), max(xs)) if xs else (1, 25)
        span_lo = min(x_lo, 25) if x_lo - 25 <= max(10, 0.3 * (x_hi - x_lo)) else x_lo
        x_lo_axis = max(0, span_lo - 1)
        x_hi_axis = max(x_hi + 1, x_lo_axis + 10)
        ax.set_xlim(x_lo_axis, x_hi_axis)
        y_top = max([*ys, h or 0, 1.0]) * 1.22
        ax.set_ylim(0, y_top)
        # The mark falls after the 25th pump: pump 26 is the first with 25 placed before (reports.outcomes).
        mark = EXPERIENCE_THRESHOLD + 0.5
        if x_lo_axis <= mark <= x_hi_axis:
            ax.axvline(mark, color=MARK_25, lw=0.9)
            ax.text(mark, y_top * 0.97, " after the 25th pump", color=MARK_25, fontsize=7, va="top", ha="left")
        else:
            ax.text(
                0.01,
                0.97,
                "◀ 25th pump placed earlier",
                transform=ax.transAxes,
                color=MARK_25,
                fontsize=7,
                va="top",
                ha="left",
            )
        if h is not None:
            ax.text(
                0.99,
                h / y_top + 0.015,
                f"h = {h:.2f}",
                transform=ax.transAxes,
                color=SIGNAL,
                fontsize=7,
                ha="right",
                va="bottom",
            )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=7))
        ax.set_xlabel("Pump number (pre-registry pumps included)", fontsize=7.5)
        ax.set_ylabel("CUSUM", fontsize=7.5)
        ax.set_title(f"Surgeon {surgeon['code']}", loc="left", fontsize=9)
    return _svg(fig, prefix)


# --------------------------------------------------------------------------- Kaplan-Meier


def _steps(table):
    xs, ys = [0.0], [1.0]
    for row in table:
        xs.append(row["day"] / MONTH_DAYS)
        ys.append(row["survival"])
    return xs, ys


def km_svg(endpoint, centre_code, *, prefix, width_cm=8.4, height_cm=6.6):
    """Kaplan-Meier curves of the centre and the registry for one endpoint."""
    with matplotlib.rc_context(RC):
        fig = _figure(width_cm, height_cm)
        ax = fig.add_subplot()
        registry = endpoint["registry"]
        centre = endpoint["centre"]
        if registry["curve"]:
            xs, ys = _steps(registry["curve"])
            ax.step(
                xs,
                ys,
                where="post",
                color=REGISTRY,
                lw=1.1,
                label=f"Registry (n = {registry['n']})" if registry["n"] is not None else "Registry",
            )
        if centre["curve"]:
            xs, ys = _steps(centre["curve"])
            ax.step(xs, ys, where="post", color=OWN, lw=1.5, label=f"{centre_code} (n = {centre['n']})")
            censored = [(r["day"] / MONTH_DAYS, r["survival"]) for r in centre["curve"] if r["censored"]]
            if censored and len(censored) <= 60:  # beyond that the ticks only thicken the line
                ax.plot(*zip(*censored, strict=True), ls="none", marker="|", ms=3.5, color=OWN, mew=0.6)
        ax.axhline(0.5, color="#bbbbbb", lw=0.6, ls=(0, (2, 2)))
        lowest = min([r["survival"] for r in centre["curve"] + registry["curve"]] + [1.0])
        y_low = max(0.0, min(0.5, math.floor((lowest - 0.05) * 10) / 10))
        ax.set_ylim(y_low, 1.01)

        ax.set_xlim(left=0, right=endpoint["x_max_months"])
        _percent_axis(ax.yaxis)
        x_max = endpoint["x_max_months"]
        ax.xaxis.set_major_locator(MultipleLocator(3 if x_max <= 18 else 6 if x_max <= 48 else 12))
        ax.set_xlabel("Months since implantation")
        ax.set_ylabel(endpoint["y_label"])
        ax.set_title(endpoint["title"], loc="left")
        if ax.get_legend_handles_labels()[0]:  # no curve at all when a group is empty
            ax.legend(loc="best")
    return _svg(fig, prefix)


# --------------------------------------------------------------------------- indications


def indication_svg(indications, centre_code, *, prefix="indications", width_cm=16.5, height_cm=5.6):
    """Share of implantations by indication: the centre beside the registry."""
    with matplotlib.rc_context(RC):
        fig = _figure(width_cm, height_cm)
        ax = fig.add_subplot()
        rows = list(reversed(indications["rows"]))
        positions = list(range(len(rows)))
        bar = 0.38
        own = [r["centre"]["share"] or 0 for r in rows]
        reg = [r["registry"]["share"] for r in rows]
        ax.barh([p + bar / 2 for p in positions], own, height=bar, color=OWN, label=centre_code)
        ax.barh([p - bar / 2 for p in positions], [v or 0 for v in reg], height=bar, color=OTHERS, label="Registry")
        top = max([*own, *(v or 0 for v in reg), 0.1])
        for p, value in zip(positions, own, strict=True):
            ax.text(value + top * 0.01, p + bar / 2, f"{value:.0%}", va="center", fontsize=7, color=OWN)
        for p, value in zip(positions, reg, strict=True):
            label = f"{value:.0%}" if value is not None else "suppressed"
            ax.text((value or 0) + top * 0.01, p - bar / 2, label, va="center", fontsize=7, color="#555555")
        ax.set_yticks(positions, [r["short_label"] for r in rows])
        ax.set_xlim(0, top * 1.15)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0%}"))
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("Share of all implantations to date")
        ax.legend(loc="lower right")
    return _svg(fig, prefix)
