"""Names beside a scatter plot's points that do not cover each other: each label, from the
lowest point up, is lifted by half-heights past the labels placed before it, and a lifted one
gets a thin line to its point. Enough for the score of points a report plots; no solver."""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.text import Annotation
from matplotlib.transforms import Bbox

LEADER = {"arrowstyle": "-", "color": "0.6", "lw": 0.5, "shrinkA": 0, "shrinkB": 3}


def spread_labels(fig: Figure, labels: list[Annotation]) -> list[Annotation]:
    """``labels`` (annotations in offset points) moved apart where they overlap, as the
    figure is laid out now; the labels as drawn (a lifted one is replaced by its copy with a
    leader line)."""
    for label in labels:
        label.set_in_layout(False)  # moving them then leaves the axes, and the points, in place
    fig.draw_without_rendering()  # the layout, so the labels' extents are final
    placed: list[Bbox] = []
    drawn = []
    for label in sorted(labels, key=lambda a: (a.xy[1], a.xy[0])):
        # with room to spare: text is a little wider and taller, for its size, in the SVG
        # (72 dpi) and the PNG (150 dpi) than at the figure's dpi it is placed at
        box = label.get_window_extent().expanded(1.1, 1.3)
        lift = 0.0
        while any(box.translated(0, lift).overlaps(other) for other in placed):
            lift += box.height / 2
        placed.append(box.translated(0, lift))
        if lift:
            dx, dy = label.xyann
            moved = label.axes.annotate(
                label.get_text(), label.xy, xytext=(dx, dy + lift * 72 / fig.dpi),
                textcoords="offset points", ha=label.get_horizontalalignment(),
                fontsize=label.get_fontsize(), color=label.get_color(), arrowprops=LEADER)
            moved.set_in_layout(False)
            label.remove()
            label = moved
        drawn.append(label)
    return drawn
