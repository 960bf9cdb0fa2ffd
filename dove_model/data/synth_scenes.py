"""Procedural remote sensing scenes: one drawing function per scene class.

Each function paints a top-down scene on a PIL canvas and returns the *facts* its captions
must state (object counts, colours, positions, sizes, orientations). Every random choice comes
from the ``numpy.random.Generator`` it is given, so a scene is a pure function of its seed.

Classes differ in colour palette and geometry strongly enough that a small CNN separates them
within a few epochs on CPU; the attributes (count, colour, position, size) are drawn large and
high-contrast so that the retrieval model can learn them as well.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

RGB = tuple[int, int, int]

COLOURS: dict[str, RGB] = {
    "red": (205, 40, 35),
    "blue": (35, 75, 205),
    "white": (240, 240, 235),
    "yellow": (230, 205, 50),
    "green": (60, 150, 50),
    "orange": (235, 130, 30),
    "black": (25, 25, 25),
    "grey": (128, 128, 128),
}
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight")
# 3x3 grid of positions: name -> (column, row) in {0, 1, 2}
POSITIONS: dict[str, tuple[int, int]] = {
    "top left": (0, 0),
    "top": (1, 0),
    "top right": (2, 0),
    "left": (0, 1),
    "center": (1, 1),
    "right": (2, 1),
    "bottom left": (0, 2),
    "bottom": (1, 2),
    "bottom right": (2, 2),
}


@dataclass
class Facts:
    """What a caption may say about one scene."""

    scene: list[str]  # synonyms of the scene name ("farmland", "cropland")
    subject: str  # the main objects with their attributes ("four large white tanks")
    where: str = ""  # position / orientation clause ("in the top left corner")
    extra: list[str] = field(default_factory=list)  # class-specific full sentences
    attributes: dict[str, str | int] = field(default_factory=dict)


def texture(rng: np.random.Generator, size: int, base: RGB, noise: float = 12.0) -> Image.Image:
    """A base colour with low-frequency blotches and fine grain, like aerial ground cover."""
    blotch = rng.normal(0.0, noise, size=(8, 8, 3)).astype(np.float32)
    blotch_img = Image.fromarray(np.clip(blotch + 128, 0, 255).astype(np.uint8)).resize(
        (size, size), Image.Resampling.BILINEAR
    )
    grain = rng.integers(-6, 7, size=(size, size, 1), dtype=np.int16)
    arr = np.asarray(blotch_img, dtype=np.int16) - 128 + np.array(base, dtype=np.int16) + grain
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def jitter(rng: np.random.Generator, colour: RGB, amount: int = 18) -> RGB:
    r, g, b = (int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in colour)
    return (r, g, b)


def position_box(name: str, size: int, margin: float = 0.08) -> tuple[float, float, float, float]:
    """The cell of the 3x3 grid called ``name``: (x0, y0, x1, y1)."""
    col, row = POSITIONS[name]
    cell = size / 3
    pad = margin * size
    return (
        col * cell + pad / 3,
        row * cell + pad / 3,
        (col + 1) * cell - pad / 3,
        (row + 1) * cell - pad / 3,
    )


def where_phrase(position: str, rng: np.random.Generator) -> str:
    if position == "center":
        return str(rng.choice(["in the center", "in the middle", "at the center"]))
    if " " in position:
        return str(rng.choice([f"in the {position} corner", f"at the {position}"]))
    return str(rng.choice([f"on the {position} side", f"at the {position}", f"on the {position}"]))


def plural(n: int, word: str, words: str | None = None) -> str:
    return f"{NUMBERS[n]} {word if n == 1 else (words or word + 's')}"


# ------------------------------------------------------------------------------ scenes
def farmland(rng: np.random.Generator, size: int) -> tuple[Image.Image, Facts]:
    img = texture(rng, size, (120, 85, 50))
    draw = ImageDraw.Draw(img)
    colour = str(rng.choice(["green", "yellow"]))
    n_plots = int(rng.choice([2, 4, 6]))
    cols, rows = {2: (2, 1), 4: (2, 2), 6: (3, 2)}[n_plots]
    gap = size * 0.04
    w, h = size / cols, size / rows
    for c in range(cols):
        for r in range(rows):
            x0, y0 = c * w + gap, r * h + gap
            x1, y1 = (c + 1) * w - gap, (r + 1) * h - gap
            draw.rectangle((x0, y0, x1, y1), fill=jitter(rng, COLOURS[colour], 20))
            step = max(3, int(size / 40))
            vertical = rng.random() < 0.5
            for k in range(int(x0 if vertical else y0), int(x1 if vertical else y1), step * 2):
                line = (k, y0, k, y1) if vertical else (x0, k, x1, k)
                draw.line(line, fill=jitter(rng, (90, 70, 40), 10), width=1)
    facts = Facts(
        scene=["farmland", "cropland", "agricultural land"],
        subject=f"{plural(n_plots, 'field')} of {colour} crops",
        extra=[
            f"The farmland is divided into {plural(n_plots, 'plot')} of {colour} crops.",
            f"{NUMBERS[n_plots].capitalize()} {colour} fields are separated by brown paths.",
        ],
        attributes={"count": n_plots, "colour": colour},
    )
    return img, facts


def forest(rng: np.random.Generator, size: int) -> tuple[Image.Image, Facts]:
    img = texture(rng, size, (30, 85, 35), noise=10)
    draw = ImageDraw.Draw(img)
    position = str(rng.choice(list(POSITIONS)))
    clearing = position_box(position, size, margin=0.15)
    dense = rng.random() < 0.5
    n_trees = int(size * size / (200 if dense else 450))
    radius = size / 32
    centres = rng.uniform(0, size, (n_trees, 2))
    light = rng.random(n_trees) < 0.5
    shades = rng.integers(-12, 13, (n_trees, 3))
    for (x, y), is_light, shade in zip(centres, light, shades, strict=True):
        if clearing[0] < x < clearing[2] and clearing[1] < y < clearing[3]:
            continue
        base = (50, 115, 45) if is_light else (20, 70, 25)
        colour = (base[0] + int(shade[0]), base[1] + int(shade[1]), base[2] + int(shade[2]))
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
    draw.ellipse(clearing, fill=jitter(rng, (165, 140, 90), 10))
    density = "dense" if dense else "sparse"
    where = where_phrase(position, rng)
    facts = Facts(
        scene=["forest", "woodland"],
        subject=f"a {density} forest with a brown clearing",
        where=where,
        extra=[
            f"Many {density} green trees surround a bare clearing {where}.",
            f"A {density} woodland has an open patch of ground {where}.",
        ],
        attributes={"position": position, "density": density},
    )
    return img, facts


def _wavy_path(
    rng: np.random.Generator, size: int, vertical: bool
) -> tuple[list[tuple[float, float]], float]:
    """A meandering centre line across the image and its mean offset."""
    centre = rng.uniform(0.35, 0.65) * size
    amp, phase = rng.uniform(0.03, 0.08) * size, rng.uniform(0, 2 * np.pi)
    t = np.linspace(-0.1 * size, 1.1 * size, 40)
    off = centre + amp * np.sin(2 * np.pi * t / size + phase)
    points = [(o, s) if vertical else (s, o) for s, o in zip(t, off, strict=True)]
    return points, centre


def river(rng: np.random.Generator, size: int) -> tuple[Image.Image, Facts]:
    img = texture(rng, size, (85, 130, 60))
    draw = ImageDraw.Draw(img)
    vertical = rng.random() < 0.5
    wide = rng.random() < 0.5
    width = size * (0.22 if wide else 0.09)
    path, _ = _wavy_path(rng, size, vertical)
    draw.line(path, fill=jitter(rng, (190, 170, 120), 8), width=int(width + size * 0.04))
    draw.line(path, fill=jitter(rng, (40, 80, 150), 10), width=int(width))
    orientation = "vertically" if vertical else "horizontally"
    breadth = "wide" if wide else "narrow"
    facts = Facts(
        scene=["river", "riverside"],
        subject=f"a {breadth} blue river",
        where=f"flowing {orientation} through green land",
        extra=[
            f"A {breadth} river runs {orientation} across the image.",
            f"The {breadth} river crosses the green fields {orientation}.",
        ],
        attributes={"orientation": orientation, "size": breadth},
    )
    return img, facts


def lake(rng: np.random.Generator, size: int) -> tuple[Image.Image, Facts]:
    img = texture(rng, size, (95, 140, 70))
    draw = ImageDraw.Draw(img)
    large = rng.random() < 0.5
    if large:
        position = str(rng.choice(["left", "center", "right", "top", "bottom"]))
        x0, y0, x1, y1 = position_box(position, size)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        rx, ry = size * 0.3, size * 0.26
    else:
        position = str(rng.choice(list(POSITIONS)))
        x0, y0, x1, y1 = position_box(position, size)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        rx, ry = size * 0.12, size * 0.1
    draw.ellipse((cx - rx - 4, cy - ry - 4, cx + rx + 4, cy + ry + 4), fill=(170, 160, 110))
    draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=jitter(rng, (30, 70, 140), 10))
    magnitude = "large" if large else "small"
    where = where_phrase(position, rng)
    facts = Facts(
        scene=["lake", "pond"] if not large else ["lake", "reservoir"],
        subject=f"a {magnitude} blue lake",
        where=where,
        extra=[
            f"A {magnitude} lake lies {where} surrounded by green meadow.",
            f"There is {'a large' if large else 'a small'} body of water {where}.",
        ],
        attributes={"position": position, "size": magnitude},
    )
    return img, facts


def _houses(
    draw: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    size: int,
    roof: RGB,
    pitch: float,
    house: float,
) -> int:
    count = 0
    y = pitch * 0.3
    while y < size - house:
        x = pitch * 0.3
        while x < size - house:
            if rng.random() < 0.9:
                w, h = house * rng.uniform(0.8, 1.1), house * rng.uniform(0.7, 1.0)
                draw.rectangle((x, y, x + w, y + h), fill=jitter(rng, roof, 15))
                count += 1
            x += pitch
        y += pitch
    return count


def residential(rng: np.random.Generator, size: int) -> tuple[Image.Image, Facts]:
    img = texture(rng, size, (90, 145, 70))
    draw = ImageDraw.Draw(img)
    colour = str(rng.choice(["red", "blue", "white", "orange"]))
    road = size * 0.06
    for k in (size / 3, 2 * size / 3):
        draw.rectangle((0, k - road / 2, size, k + road / 2), fill=(105, 105, 105))
    pitch = size / 6
    for row in range(6):
        for col in range(5):
            cy = row * pitch + pitch / 2
            if min(abs(cy - size / 3), abs(cy - 2 * size / 3)) < road:
                continue
            cx = col * size / 5 + size / 10
            half = size * 0.045
            draw.rectangle(
                (cx - half, cy - half, cx + half, cy + half * 0.8),
                fill=jitter(rng, COLOURS[colour], 15),
            )
    facts = Facts(
        scene=["residential area", "neighbourhood", "suburb"],
        subject=f"houses with {colour} roofs",
        where="along two parallel roads",
        extra=[
            f"Detached houses with {colour} roofs stand among green lawns.",
            f"Two straight roads pass between rows of {colour} houses.",
        ],
        attributes={"colour": colour},
    )
    return img, facts


def dense_residential(rng: np.random.Generator, size: int) -> tuple[Image.Image, Facts]:
    img = texture(rng, size, (150, 145, 135))
    draw = ImageDraw.Draw(img)
    colour = str(rng.choice(["red", "blue", "white", "orange"]))
    _houses(draw, rng, size, COLOURS[colour], pitch=size / 11, house=size / 13)
    facts = Facts(
        scene=["dense residential area", "crowded residential district", "dense housing"],
        subject=f"many tightly packed buildings with {colour} roofs",
        extra=[
            f"Buildings with {colour} roofs are densely packed together.",
            f"A crowded district full of small {colour} houses.",
        ],
        attributes={"colour": colour},
    )
    return img, facts


def _car(
    draw: ImageDraw.ImageDraw, x: float, y: float, size: int, colour: RGB, vertical: bool
) -> None:
    a, b = size * 0.035, size * 0.018
    w, h = (b, a) if vertical else (a, b)
    draw.rectangle((x - w, y - h, x + w, y + h), fill=colour, outline=(20, 20, 20))


def road_crossing(rng: np.random.Generator, size: int) -> tuple[Image.Image, Facts]:
    img = texture(rng, size, (120, 150, 80))
    draw = ImageDraw.Draw(img)
    shape = str(rng.choice(["cross", "T"]))
    road, mid = size * 0.16, size / 2
    grey = jitter(rng, (95, 95, 95), 8)
    draw.rectangle((0, mid - road / 2, size, mid + road / 2), fill=grey)
    draw.rectangle((mid - road / 2, mid if shape == "T" else 0, mid + road / 2, size), fill=grey)
    for k in range(0, size, int(size / 12)):
        draw.line((k, mid, k + size / 24, mid), fill=(235, 235, 220), width=2)
    colour = str(rng.choice(["red", "blue", "white", "yellow"]))
    n_cars = int(rng.integers(1, 5))
    slots = [(size * f, mid - road / 4, False) for f in (0.1, 0.25, 0.7, 0.88)]
    slots += [(size * f, mid + road / 4, False) for f in (0.15, 0.8)]
    for i in rng.permutation(len(slots))[:n_cars]:
        x, y, vertical = slots[i]
        _car(draw, x, y, size, COLOURS[colour], vertical)
    kind = "a crossroads" if shape == "cross" else "a T-junction"
    facts = Facts(
        scene=["road intersection", "crossroads", "junction"],
        subject=f"{plural(n_cars, colour + ' car')}",
        where=f"on {kind} of two grey roads",
        extra=[
            f"Two roads meet at {kind} with {plural(n_cars, colour + ' car')}.",
            f"{kind[0].upper()}{kind[1:]} where {plural(n_cars, 'car')} painted {colour} "
            f"{'drives' if n_cars == 1 else 'drive'}.",
        ],
        attributes={"count": n_cars, "colour": colour, "shape": shape},
    )
    return img, facts


def _plane(draw: ImageDraw.ImageDraw, x: float, y: float, span: float, colour: RGB) -> None:
    body, wing = span * 0.16, span * 0.14
    draw.rectangle((x - body / 2, y - span / 2, x + body / 2, y + span / 2), fill=colour)
    draw.rectangle((x - span / 2, y - wing, x + span / 2, y + wing * 0.4), fill=colour)
    draw.rectangle(
        (x - span / 4, y + span / 2 - wing, x + span / 4, y + span / 2 - wing / 3), fill=colour
    )


def airport(rng: np.random.Generator, size: int) -> tuple[Image.Image, Facts]:
    img = texture(rng, size, (165, 160, 110))
    draw = ImageDraw.Draw(img)
    vertical = rng.random() < 0.5
    lo, hi = size * 0.18, size * 0.42
    box = (lo, 0, hi, size) if vertical else (0, lo, size, hi)
    draw.rectangle(box, fill=jitter(rng, (70, 70, 72), 6))
    centre = (lo + hi) / 2
    for k in range(0, size, int(size / 8)):
        dash = (
            (centre, k, centre, k + size / 16) if vertical else (k, centre, k + size / 16, centre)
        )
        draw.line(dash, fill=(245, 245, 245), width=max(2, size // 90))
    n_planes = int(rng.integers(1, 4))
    span = size * 0.17
    for i in range(n_planes):
        along = size * (0.2 + 0.3 * i)
        x, y = (size * 0.72, along) if vertical else (along, size * 0.72)
        _plane(draw, x, y, span, COLOURS["white"])
    orientation = "vertical" if vertical else "horizontal"
    facts = Facts(
        scene=["airport", "airfield"],
        subject=f"{plural(n_planes, 'white plane')}",
        where=f"parked beside a {orientation} runway",
        extra=[
            f"A long {orientation} runway with {plural(n_planes, 'airplane')} next to it.",
            f"{NUMBERS[n_planes].capitalize()} white aircraft "
            f"{'stands' if n_planes == 1 else 'stand'} near the {orientation} runway.",
        ],
        attributes={"count": n_planes, "orientation": orientation},
    )
    return img, facts


def beach(rng: np.random.Generator, size: int) -> tuple[Image.Image, Facts]:
    img = texture(rng, size, (225, 200, 140), noise=8)
    draw = ImageDraw.Draw(img)
    side = str(rng.choice(["left", "right", "top", "bottom"]))
    edge = size * rng.uniform(0.4, 0.55)
    sea = jitter(rng, (25, 105, 170), 10)
    box = {
        "left": (0, 0, edge, size),
        "right": (size - edge, 0, size, size),
        "top": (0, 0, size, edge),
        "bottom": (0, size - edge, size, size),
    }[side]
    draw.rectangle(box, fill=sea)
    foam = {
        "left": (edge - 3, 0, edge + 3, size),
        "right": (size - edge - 3, 0, size - edge + 3, size),
        "top": (0, edge - 3, size, edge + 3),
        "bottom": (0, size - edge - 3, size, size - edge + 3),
    }[side]
    draw.rectangle(foam, fill=(245, 245, 245))
    where = where_phrase(side, rng)
    facts = Facts(
        scene=["beach", "coast", "seashore"],
        subject="the blue sea and a yellow sandy beach",
        where=f"with the water {where}",
        extra=[
            f"The sea lies {where} of the sandy beach.",
            f"White waves break on the yellow sand, with the ocean {where}.",
        ],
        attributes={"position": side},
    )
    return img, facts


def parking_lot(rng: np.random.Generator, size: int) -> tuple[Image.Image, Facts]:
    img = texture(rng, size, (110, 110, 112), noise=6)
    draw = ImageDraw.Draw(img)
    colour = str(rng.choice(["red", "blue", "white", "yellow", "black"]))
    n_rows = int(rng.integers(2, 5))
    row_gap = size / (n_rows + 1)
    for r in range(n_rows):
        y = row_gap * (r + 1)
        draw.line(
            (size * 0.05, y - size * 0.05, size * 0.95, y - size * 0.05), fill=(235, 235, 235)
        )
        for k in range(11):
            x = size * (0.09 + 0.082 * k)
            if rng.random() < 0.85:
                car = COLOURS[colour] if rng.random() < 0.85 else jitter(rng, (160, 160, 160))
                _car(draw, x, y, size, jitter(rng, car, 10), vertical=True)
    facts = Facts(
        scene=["parking lot", "car park"],
        subject=f"{plural(n_rows, 'row')} of mostly {colour} cars",
        extra=[
            f"Cars, most of them {colour}, are parked in {plural(n_rows, 'row')}.",
            f"A grey car park holds {plural(n_rows, 'line')} of {colour} vehicles.",
        ],
        attributes={"count": n_rows, "colour": colour},
    )
    return img, facts


def playground(rng: np.random.Generator, size: int) -> tuple[Image.Image, Facts]:
    img = texture(rng, size, (150, 150, 140), noise=8)
    draw = ImageDraw.Draw(img)
    colour = str(rng.choice(["red", "blue"]))
    n_fields = int(rng.choice([1, 2]))
    track = COLOURS[colour]
    for i in range(n_fields):
        if n_fields == 1:
            box = (size * 0.15, size * 0.25, size * 0.85, size * 0.75)
        else:
            box = (size * (0.05 + 0.48 * i), size * 0.2, size * (0.47 + 0.48 * i), size * 0.8)
        draw.rounded_rectangle(box, radius=(box[3] - box[1]) / 2, fill=jitter(rng, track, 10))
        inset = size * 0.05
        inner = (box[0] + inset, box[1] + inset, box[2] - inset, box[3] - inset)
        draw.rounded_rectangle(
            inner, radius=(inner[3] - inner[1]) / 2, fill=jitter(rng, (50, 150, 60), 8)
        )
        draw.line(
            ((inner[0] + inner[2]) / 2, inner[1], (inner[0] + inner[2]) / 2, inner[3]),
            fill=(240, 240, 240),
            width=2,
        )
    facts = Facts(
        scene=["playground", "sports field", "stadium"],
        subject=f"{plural(n_fields, 'green football field')} inside "
        + (f"a {colour} running track" if n_fields == 1 else f"{colour} running tracks"),
        extra=[
            f"{NUMBERS[n_fields].capitalize()} {colour} running "
            f"{'track surrounds' if n_fields == 1 else 'tracks surround'} green grass.",
            f"A sports ground with {plural(n_fields, colour + ' track')}.",
        ],
        attributes={"count": n_fields, "colour": colour},
    )
    return img, facts


def storage_tanks(rng: np.random.Generator, size: int) -> tuple[Image.Image, Facts]:
    img = texture(rng, size, (170, 160, 140), noise=8)
    draw = ImageDraw.Draw(img)
    n_tanks = int(rng.integers(1, 7))
    large = rng.random() < 0.5
    radius = size * (0.12 if large else 0.065)
    cells = [(c, r) for r in range(3) for c in range(3)]
    for i in rng.permutation(9)[:n_tanks]:
        c, r = cells[i]
        x, y = (c + 0.5) * size / 3, (r + 0.5) * size / 3
        draw.ellipse(
            (x - radius - 2, y - radius + 2, x + radius + 2, y + radius + 4), fill=(70, 65, 60)
        )
        draw.ellipse(
            (x - radius, y - radius, x + radius, y + radius), fill=jitter(rng, COLOURS["white"], 6)
        )
        draw.ellipse(
            (x - radius / 4, y - radius / 4, x + radius / 4, y + radius / 4), fill=(200, 200, 200)
        )
    magnitude = "large" if large else "small"
    facts = Facts(
        scene=["industrial area", "oil depot", "tank farm"],
        subject=f"{plural(n_tanks, magnitude + ' white storage tank')}",
        extra=[
            f"{NUMBERS[n_tanks].capitalize()} {magnitude} round "
            f"{'tank stands' if n_tanks == 1 else 'tanks stand'} on bare ground.",
            f"An oil depot with {plural(n_tanks, magnitude + ' circular tank')}.",
        ],
        attributes={"count": n_tanks, "size": magnitude},
    )
    return img, facts


def bridge(rng: np.random.Generator, size: int) -> tuple[Image.Image, Facts]:
    img = texture(rng, size, (90, 135, 65))
    draw = ImageDraw.Draw(img)
    vertical = rng.random() < 0.5
    width = size * 0.26
    path, centre = _wavy_path(rng, size, vertical)
    draw.line(path, fill=jitter(rng, (40, 85, 150), 10), width=int(width))
    n_bridges = int(rng.choice([1, 2]))
    deck = size * 0.06
    for i in range(n_bridges):
        along = size * (0.5 if n_bridges == 1 else 0.28 + 0.44 * i)
        a, b = centre - width * 0.8, centre + width * 0.8
        box = (
            (a, along - deck / 2, b, along + deck / 2)
            if vertical
            else (along - deck / 2, a, along + deck / 2, b)
        )
        draw.rectangle(box, fill=jitter(rng, (175, 175, 170), 6), outline=(60, 60, 60))
    orientation = "vertical" if vertical else "horizontal"
    facts = Facts(
        scene=["bridge", "river crossing"],
        subject=f"{plural(n_bridges, 'grey bridge')}",
        where=f"crossing a {orientation} river",
        extra=[
            f"A {orientation} river is spanned by {plural(n_bridges, 'bridge')}.",
            f"{NUMBERS[n_bridges].capitalize()} "
            f"{'road bridge crosses' if n_bridges == 1 else 'road bridges cross'} the blue water.",
        ],
        attributes={"count": n_bridges, "orientation": orientation},
    )
    return img, facts


def desert(rng: np.random.Generator, size: int) -> tuple[Image.Image, Facts]:
    img = texture(rng, size, (215, 170, 100), noise=10)
    draw = ImageDraw.Draw(img)
    diagonal = rng.random() < 0.5
    step = size / 9
    for k in range(-size, 2 * size, int(step)):
        if diagonal:
            draw.line((k, 0, k + size, size), fill=(175, 130, 70), width=max(2, size // 64))
        else:
            pts = [
                (x, k / 2 + size * 0.02 * np.sin(x / size * 6)) for x in np.linspace(0, size, 12)
            ]
            draw.line(pts, fill=(175, 130, 70), width=max(2, size // 64))
    orientation = "diagonal" if diagonal else "horizontal"
    facts = Facts(
        scene=["desert", "sandy wasteland", "dune field"],
        subject=f"orange sand dunes in {orientation} ridges",
        extra=[
            f"Bare sand forms {orientation} dune ridges.",
            f"An empty desert with {orientation} lines of dunes.",
        ],
        attributes={"orientation": orientation},
    )
    return img, facts


Scene = Callable[[np.random.Generator, int], tuple[Image.Image, Facts]]
SCENES: dict[str, Scene] = {
    "farmland": farmland,
    "forest": forest,
    "river": river,
    "lake": lake,
    "residential": residential,
    "dense_residential": dense_residential,
    "road_crossing": road_crossing,
    "airport": airport,
    "beach": beach,
    "parking_lot": parking_lot,
    "playground": playground,
    "storage_tanks": storage_tanks,
    "bridge": bridge,
    "desert": desert,
}
