"""The qualitative figure: frames in the order asked, upscaled, the legend outside the frames."""
import numpy as np
import pytest

from foundation.errors import UserError
from tracker.figure import MIN_TILE_WIDTH, Panel, _draw_panel, legend_strip, qualitative_figure, video_frame
from tracker.overlay import colors_for

TRACKERS = ["metasdnet", "metasdnet-l2f", "metasdnet-dropgrad", "metasdnet-l2f-dropgrad"]
COLORS = colors_for(TRACKERS)


def _panels(levels, size=(64, 48)):
    """Uniform grey frames whose level encodes their position; boxes in the top-left corner."""
    return [Panel(np.full((size[1], size[0], 3), lv, np.uint8), f, {t: [2, 2, 10, 8] for t in TRACKERS},
                  gt=[3, 3, 10, 8]) for f, lv in levels]


def test_frames_in_the_requested_order_and_upscaled():
    rows = [("SeqA", _panels([(5, 40), (2, 120), (9, 200)])), ("SeqB", _panels([(1, 90), (3, 60)]))]
    fig = qualitative_figure(rows, TRACKERS, COLORS)
    width = MIN_TILE_WIDTH                                  # 64-px frames drawn 5.6x larger
    assert fig.shape[1] == 3 * width + 4 * 8
    tile_h = int(round(48 * width / 64))
    title_h = int(34 * width / 480) + 12
    for r, (_, panels) in enumerate(rows):
        y = r * (title_h + tile_h + 8) + title_h + tile_h - 5   # the bottom of the tile: no box there
        levels = [int(fig[y, 8 + c * (width + 8) + width // 2, 0]) for c in range(len(panels))]
        assert levels == [int(p.image[0, 0, 0]) for p in panels]    # left to right as given


def test_the_legend_is_below_the_frames_not_over_them():
    rows = [("Seq", _panels([(1, 30), (2, 30)]))]
    fig = qualitative_figure(rows, TRACKERS, COLORS)
    width = MIN_TILE_WIDTH
    title_h = int(34 * width / 480) + 12
    tile = _draw_panel(rows[0][1][0], COLORS, width)
    # the tile is exactly the drawn frame: nothing (no legend) is drawn over it
    assert np.array_equal(fig[title_h:title_h + tile.shape[0], 8:8 + width], tile)
    legend = legend_strip(TRACKERS, COLORS, fig.shape[1], gt=True, scale=width / 480 * 0.7)
    assert np.array_equal(fig[-legend.shape[0]:], legend)
    assert fig.shape[0] == title_h + tile.shape[0] + 8 + legend.shape[0]
    # every tracker's colour is in the legend strip (BGR of the seed's red, green, blue, cyan)
    for name in TRACKERS:
        r, g, b = COLORS[name]
        assert (np.abs(legend.astype(int) - [b, g, r]).sum(axis=2) < 30).any(), name


def test_video_frames_are_upscaled_with_the_legend_below():
    panel = _panels([(4, 80)])[0]
    frame = video_frame(panel, TRACKERS, COLORS)
    assert frame.shape[1] == 640 and frame.shape[0] > int(round(48 * 640 / 64))
    top = _draw_panel(panel, COLORS, 640)
    assert np.array_equal(frame[:top.shape[0]], top)


def test_no_frames_is_one_error():
    with pytest.raises(UserError, match="no frames"):
        qualitative_figure([("Seq", [])], TRACKERS, COLORS)
