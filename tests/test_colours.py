"""Tests for pipeline.colours: one palette for the report and the exports."""
from pipeline.colours import CATEGORY_PALETTE, PALETTE, category_colours, workshop_colours


def test_colours_go_by_position_and_wrap_around():
    workshops = [f"ws-{i}" for i in range(len(PALETTE) + 1)]
    colours = workshop_colours(workshops)
    assert colours["ws-0"] == PALETTE[0][0] == colours[workshops[-1]]
    categories = category_colours(["b", "a"])
    assert categories == {"b": CATEGORY_PALETTE[0], "a": CATEGORY_PALETTE[1]}


def test_workshop_and_category_colours_never_share_a_colour():
    assert not {fill for fill, _ in PALETTE} & set(CATEGORY_PALETTE)


def test_the_charts_draw_with_these_colours():
    from pipeline import colours, report_charts

    assert report_charts.workshop_colours is colours.workshop_colours
    assert report_charts.category_colours is colours.category_colours
    assert report_charts.COLOURS["workshop"] == tuple(fill for fill, _ in colours.PALETTE)
    assert report_charts.COLOURS["vote"] == colours.VOTE_COLOURS
    assert report_charts.COLOURS["category"] == colours.CATEGORY_PALETTE
