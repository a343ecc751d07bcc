"""Line charts as standalone SVG, for the cost curves in BENCHMARKS.md.

No plotting library: Debian's python3 on this machine has none installed,
and the charts need only lines, markers, ticks and a legend.

  svg = line_chart("Server time against image size", "image side (px)",
                   "ms", {"STRETCH": [(256, 31.0), ...], ...}, log_x=True)
"""
import math
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 720, 440
LEFT, RIGHT, TOP, BOTTOM = 70, 170, 40, 60
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def nice_ticks(low, high, intervals=5):
    """Ticks at 1, 2 or 5 times a power of ten covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low, low + 1]
    raw = (high - low) / intervals
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = [first]
    while ticks[-1] < high - 1e-9 * step:
        ticks.append(ticks[-1] + step)
    return ticks


def label(value):
    return f"{value:g}" if abs(value) < 1e5 else f"{value:.0e}"


def line_chart(title, x_label, y_label, series, log_x=False):
    """`series`: {name: [(x, y), ...]} drawn in order with markers. A log2
    x axis when log_x (sizes and concurrencies that double)."""
    points = [p for values in series.values() for p in values]
    if not points:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
                f'height="{HEIGHT}"><text x="20" y="40">no data</text></svg>')
    fx = (lambda x: math.log2(x)) if log_x else (lambda x: x)
    xs = [fx(x) for x, _ in points]
    if log_x:
        x_ticks = sorted({x for x, _ in points})
    else:
        x_ticks = nice_ticks(min(xs), max(xs))
    y_ticks = nice_ticks(0, max(y for _, y in points) * 1.05)
    x_low = min(fx(t) for t in x_ticks)
    x_high = max(fx(t) for t in x_ticks)
    if x_high == x_low:
        x_high = x_low + 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x):
        return LEFT + (fx(x) - x_low) / (x_high - x_low) * plot_w

    def py(y):
        return TOP + plot_h - y / y_ticks[-1] * plot_h

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
           f'height="{HEIGHT}" font-family="sans-serif" font-size="12">',
           f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
           f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" '
           f'font-size="15">{escape(title)}</text>']
    for t in x_ticks:
        out.append(f'<line x1="{px(t):.1f}" y1="{TOP}" x2="{px(t):.1f}" '
                   f'y2="{TOP + plot_h}" stroke="#ddd"/>')
        out.append(f'<text x="{px(t):.1f}" y="{TOP + plot_h + 16}" '
                   f'text-anchor="middle">{label(t)}</text>')
    for t in y_ticks:
        out.append(f'<line x1="{LEFT}" y1="{py(t):.1f}" x2="{LEFT + plot_w}" '
                   f'y2="{py(t):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 6}" y="{py(t) + 4:.1f}" '
                   f'text-anchor="end">{label(t)}</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" '
               f'height="{plot_h}" fill="none" stroke="#333"/>')
    out.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 18}" '
               f'text-anchor="middle">{escape(x_label)}</text>')
    out.append(f'<text transform="translate(18 {TOP + plot_h / 2}) '
               f'rotate(-90)" text-anchor="middle">{escape(y_label)}</text>')
    for i, (name, values) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in values)
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" '
                   'stroke-width="2"/>')
        for x, y in values:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" '
                       f'fill="{color}"><title>{escape(name)}: {label(x)}, '
                       f'{y:.4g}</title></circle>')
        legend_y = TOP + 10 + 20 * i
        out.append(f'<line x1="{LEFT + plot_w + 12}" y1="{legend_y}" '
                   f'x2="{LEFT + plot_w + 32}" y2="{legend_y}" '
                   f'stroke="{color}" stroke-width="2"/>')
        out.append(f'<text x="{LEFT + plot_w + 38}" y="{legend_y + 4}">'
                   f'{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
