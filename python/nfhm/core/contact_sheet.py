"""A contact sheet: rows of framed, captioned thumbnails drawn into one picture with PIL.

The report's nearest-neighbour grid is one (src/report/neighbour-grid.ts lays it out): each row
a caption, then groups of cells (the query; its neighbours under one model; under another),
each group under a header. A cell's frame colour says what it is: the query, or a neighbour of
the query's class or of another class. What to show is the caller's; this module only draws.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont, ImageOps

from .images import UnreadableImage, open_rgb

# Okabe and Ito's blue, bluish green and vermillion: told apart with the common colour blindnesses;
# grey: a neighbour whose label or whose query's label is unknown.
FRAMES = {"query": (0, 114, 178), "right": (0, 158, 115), "wrong": (213, 94, 0), "neighbour": (153, 153, 153)}
UNREADABLE = (200, 200, 200)
BORDER = 3  # frame width around a thumbnail
GAP = 4  # between cells of a group
GROUP_GAP = 16  # between groups
MARGIN = 8
ROW_CAPTION_WIDTH = 110
FONT_SIZE = 11
LINE = 13  # height of one line of text
ELLIPSIS = ".."


@dataclass(frozen=True)
class Cell:
    id: int  # the image, by the id in the call's image list
    caption: str
    mark: str  # a key of FRAMES


@dataclass(frozen=True)
class Row:
    caption: str  # may hold line breaks
    groups: Sequence[Sequence[Cell]]


@dataclass(frozen=True)
class Sheet:
    image: Image.Image
    unreadable: int  # images drawn as grey squares: gone or damaged since they were embedded


@dataclass(frozen=True)
class Layout:
    """Where everything goes: cells are `size` + 2 * BORDER square with a caption line below."""

    size: int
    columns: tuple[int, ...]  # cells in each group (its longest row)

    @property
    def cell(self) -> int:
        return self.size + 2 * BORDER

    @property
    def row_height(self) -> int:
        return self.cell + LINE + GAP

    def group_x(self, group: int) -> int:
        x = MARGIN + ROW_CAPTION_WIDTH
        for count in self.columns[:group]:
            x += count * (self.cell + GAP) - GAP + GROUP_GAP
        return x

    def cell_box(self, row: int, group: int, column: int) -> tuple[int, int]:
        """The top-left corner of a cell's frame."""
        return self.group_x(group) + column * (self.cell + GAP), MARGIN + LINE + GAP + row * self.row_height

    def size_of(self, rows: int) -> tuple[int, int]:
        width = self.group_x(len(self.columns)) - GROUP_GAP + MARGIN
        return width, MARGIN + LINE + GAP + rows * self.row_height + MARGIN


def layout_of(rows: Sequence[Row], headers: Sequence[str], size: int) -> Layout:
    groups = len(headers)
    if any(len(row.groups) != groups for row in rows):
        raise ValueError(f"every row needs {groups} groups of cells, one per header")
    return Layout(size, tuple(max(len(row.groups[g]) for row in rows) for g in range(groups)))


def fit(text: str, font: ImageFont.FreeTypeFont, width: int) -> str:
    """`text` shortened with ELLIPSIS until it fits `width` pixels."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + ELLIPSIS) > width:
        text = text[:-1]
    return text + ELLIPSIS


def thumbnail(path: str, size: int) -> Image.Image | None:
    """The image fitted into a `size` square on white: small images enlarged pixel for pixel, so
    that a 28 px digit stays sharp. None when it cannot be read."""
    try:
        image = open_rgb(path)
    except UnreadableImage:
        return None
    small = max(image.size) < size
    fitted = ImageOps.contain(image, (size, size), Image.Resampling.NEAREST if small else Image.Resampling.LANCZOS)
    square = Image.new("RGB", (size, size), "white")
    square.paste(fitted, ((size - fitted.width) // 2, (size - fitted.height) // 2))
    return square


def contact_sheet(paths: Mapping[int, str], headers: Sequence[str], rows: Sequence[Row], size: int) -> Sheet:
    if not rows:
        raise ValueError("a contact sheet needs at least one row")
    layout = layout_of(rows, headers, size)
    font = ImageFont.load_default(size=FONT_SIZE)
    sheet = Image.new("RGB", layout.size_of(len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for g, header in enumerate(headers):
        width = layout.columns[g] * (layout.cell + GAP) - GAP
        draw.text((layout.group_x(g), MARGIN), fit(header, font, width), fill="black", font=font)
    unreadable = 0
    for r, row in enumerate(rows):
        _, top = layout.cell_box(r, 0, 0)
        lines = [fit(line, font, ROW_CAPTION_WIDTH - GAP) for line in row.caption.split("\n")]
        draw.multiline_text((MARGIN, top), "\n".join(lines), fill="black", font=font, spacing=2)
        for g, cells in enumerate(row.groups):
            for c, cell in enumerate(cells):
                x, y = layout.cell_box(r, g, c)
                draw.rectangle((x, y, x + layout.cell - 1, y + layout.cell - 1), fill=FRAMES[cell.mark])
                picture = thumbnail(paths[cell.id], size)
                if picture is None:
                    unreadable += 1
                    picture = Image.new("RGB", (size, size), UNREADABLE)
                sheet.paste(picture, (x + BORDER, y + BORDER))
                draw.text((x, y + layout.cell + 1), fit(cell.caption, font, layout.cell), fill="black", font=font)
    return Sheet(sheet, unreadable)
