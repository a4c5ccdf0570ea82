"""The colours charts share: one colour per pruning method (every chart that colours by method takes its
colour channel from method_colour), and the colours of right / wrong and of the change between two models."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import altair as alt

# One colour per pruning method, the same on every chart: Paul Tol's "muted" scheme (distinct for the
# common colour-vision deficiencies) for the known methods, then Okabe & Ito's for any other. Ten are
# pairwise distinct; dense and biprop, ft and random no longer share a hue.
METHOD_COLOURS: dict[str, str] = {
    "dense": "#332288", "ft": "#88ccee", "lrr": "#44aa99", "ltr": "#117733", "gmp": "#999933", "snip": "#ddcc77",
    "random": "#cc6677", "biprop": "#882255", "edgepopup": "#aa4499",
}
EXTRA_METHOD_COLOURS = ("#000000", "#e69f00", "#d55e00", "#56b4e9", "#0072b2", "#009e73", "#cc79a7", "#888888")


def method_colours(methods: Sequence[str]) -> dict[str, str]:
    """Each of these methods' colour: METHOD_COLOURS for the known ones, the extra colours in turn for the
    rest (repeated only past 8 other methods), for a mark or title that is not a colour channel."""
    others = itertools.cycle(EXTRA_METHOD_COLOURS)
    return {m: METHOD_COLOURS[m] if m in METHOD_COLOURS else next(others) for m in dict.fromkeys(methods)}


def method_colour(methods: Sequence[str], title: str = "method") -> alt.Color:
    """The colour channel of `method` over these methods, in method_colours' colours."""
    colours = method_colours(methods)
    return alt.Color("method:N", title=title, scale=alt.Scale(domain=list(colours), range=list(colours.values())),
                     legend=alt.Legend(titleLimit=400, labelLimit=300))


CORRECTNESS = alt.Scale(domain=[True, False], range=["#4c78a8", "#e45756"])
CHANGES = alt.Scale(domain=["right in both", "only A right", "only B right", "wrong in both"],
                    range=["#9ecae9", "#e45756", "#54a24b", "#4c4c4c"])
