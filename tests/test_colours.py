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


def test_the_report_renderer_draws_with_these_colours():
    """Until report_render imports them from here, its copies must not drift."""
    from pipeline import colours, report_render

    for name in ("PALETTE", "VOTE_COLOURS", "CATEGORY_PALETTE", "NO_CATEGORY_COLOUR"):
        assert getattr(report_render, name) == getattr(colours, name), name
