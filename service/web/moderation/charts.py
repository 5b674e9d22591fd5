"""The overview's chart: comments per hour as stacked SVG bars, drawn by the template from these rects."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from service.db import APPROVED, HELD, PENDING, REJECTED
from service.web.moderation.queries import OVERVIEW_STATUSES, HourBar

CHART_COLOURS = {APPROVED: "#2e7d32", HELD: "#e0a100", REJECTED: "#c62828", PENDING: "#9e9e9e"}


@dataclass(frozen=True)
class ChartRect:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str


def chart_rects(bars: Sequence[HourBar], width: int, height: int) -> tuple[list[ChartRect], int]:
    """Stacked bars (approved, held, rejected, pending) per hour, scaled to the busiest hour."""
    peak = max((bar.total for bar in bars), default=0) or 1
    slot = width / max(len(bars), 1)
    rects = []
    for index, bar in enumerate(bars):
        y = float(height)
        for status in OVERVIEW_STATUSES:
            count = bar.counts.get(status, 0)
            if not count:
                continue
            size = count / peak * height
            y -= size
            rects.append(
                ChartRect(
                    x=round(index * slot + 1, 2),
                    y=round(y, 2),
                    width=round(slot - 2, 2),
                    height=round(size, 2),
                    colour=CHART_COLOURS[status],
                    title=f"{bar.start:%H}:00 UTC — {count} {status} of {bar.total}",
                )
            )
    return rects, peak
