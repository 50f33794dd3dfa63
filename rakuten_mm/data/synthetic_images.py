"""Synthetic product photos: one drawn object on a near-white background, styled noisily by class."""

import colorsys
import functools
import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

IMAGE_SIZE = 500
JPEG_QUALITY = 85

# --- Noise knobs -----------------------------------------------------------------------------
# Each cue (shape, palette, texture) is replaced by a random one independently, so an image
# classifier sees a partial, noisy signal and the image stays weaker than the text.
SHAPE_NOISE_RATE = 0.25
PALETTE_NOISE_RATE = 0.35
TEXTURE_NOISE_RATE = 0.35
# Hue jitter (degrees) around the class hue: neighbouring classes' palettes overlap.
HUE_JITTER = 22.0
SATURATION_JITTER, VALUE_JITTER = 0.15, 0.15
# Object bounding box covers this share of the frame (real photos range from thumbnails to full frame).
OBJECT_AREA_RANGE = (0.20, 0.80)
ASPECT_JITTER = 0.15
# Grain (relative brightness noise) on every surface: photos are never flat, and it brings JPEG
# sizes near the real ~24 KB median.
GRAIN_RANGE = (0.03, 0.09)
GRAIN_TILE_SIZE, GRAIN_TILE_SEED = 512, 20240
# Surfaces are palette images: MIX_LEVELS x LIGHT_LEVELS = 256 colours spanning LIGHT_RANGE.
MIX_LEVELS, LIGHT_LEVELS = 16, 16
LIGHT_RANGE = (0.62, 1.28)
MAX_DISTRACTORS = 3


@dataclass(frozen=True)
class ClassStyle:
    """How a class's photos usually look: candidate shapes, base colour (HSV) and textures."""

    shapes: tuple[str, ...]
    hue: float
    saturation: float
    value: float
    textures: tuple[str, ...]


# Sibling classes (books, games, toys...) get different shapes and palettes on purpose: the image
# then tells apart what the shared vocabulary of their titles cannot.
CLASS_STYLES = {
    10: ClassStyle(("old_book",), 38, 0.35, 0.72, ("noise", "flat")),
    2705: ClassStyle(("book",), 210, 0.70, 0.85, ("gradient", "flat")),
    2403: ClassStyle(("stack",), 140, 0.55, 0.65, ("stripes", "noise")),
    2280: ClassStyle(("magazine",), 0, 0.75, 0.85, ("noise", "gradient")),
    40: ClassStyle(("case",), 235, 0.75, 0.70, ("noise", "gradient")),
    50: ClassStyle(("pad",), 220, 0.15, 0.20, ("flat", "gradient")),
    60: ClassStyle(("console",), 200, 0.08, 0.88, ("gradient", "flat")),
    2462: ClassStyle(("pile",), 25, 0.25, 0.45, ("noise",)),
    2905: ClassStyle(("case", "screen"), 275, 0.60, 0.30, ("noise", "gradient")),
    1280: ClassStyle(("blob",), 320, 0.55, 0.95, ("dots", "flat")),
    1281: ClassStyle(("box",), 48, 0.80, 0.95, ("stripes", "gradient")),
    1302: ClassStyle(("ball", "swing"), 100, 0.70, 0.75, ("stripes", "flat")),
    1300: ClassStyle(("drone", "car"), 0, 0.85, 0.60, ("flat", "gradient")),
    1320: ClassStyle(("stroller",), 190, 0.30, 0.92, ("dots", "flat")),
    1301: ClassStyle(("sock",), 80, 0.35, 0.90, ("stripes", "dots")),
    1140: ClassStyle(("figure",), 285, 0.65, 0.70, ("gradient", "noise")),
    1180: ClassStyle(("minis", "figure"), 30, 0.10, 0.45, ("noise",)),
    1160: ClassStyle(("card",), 55, 0.75, 0.90, ("gradient", "noise")),
    1920: ClassStyle(("cushion",), 15, 0.45, 0.85, ("checker", "stripes")),
    2060: ClassStyle(("star", "bottle"), 45, 0.65, 0.80, ("gradient", "dots")),
    1560: ClassStyle(("cabinet", "chair"), 28, 0.55, 0.60, ("stripes", "flat")),
    2582: ClassStyle(("chair", "table"), 150, 0.30, 0.40, ("flat", "stripes")),
    2583: ClassStyle(("ring", "bottle"), 195, 0.75, 0.85, ("gradient", "flat")),
    2585: ClassStyle(("tool",), 22, 0.90, 0.90, ("flat", "checker")),
    1940: ClassStyle(("bag", "bottle"), 35, 0.80, 0.60, ("noise", "gradient")),
    2220: ClassStyle(("animal",), 170, 0.55, 0.65, ("dots", "flat")),
    2522: ClassStyle(("notebook",), 330, 0.25, 0.90, ("checker", "flat")),
}
TEXTURES = ("flat", "gradient", "stripes", "dots", "checker", "noise")


def _star(points: int, inner: float) -> tuple[tuple[float, float], ...]:
    """Vertices of a star polygon inside the unit box."""
    vertices = []
    for i in range(points * 2):
        radius = 0.5 if i % 2 == 0 else 0.5 * inner
        angle = math.pi * i / points - math.pi / 2
        vertices.append((0.5 + radius * math.cos(angle), 0.5 + radius * math.sin(angle)))
    return tuple(vertices)


# Shapes as data: (role, kind, geometry) in the unit box of the object; for role "sub", kind names
# the shape drawn in the geometry's sub-box.
# Roles: body (one textured surface), base/base_dark (flat, drawn under the body), dark/light/accent
# (flat, drawn over it), text (scribbled lines), sub (another shape drawn in a sub-box).
# The number after each name is the shape's natural width/height.
SHAPES = {
    "book": (0.70, (("body", "rect", (0, 0, 1, 1)), ("dark", "rect", (0, 0, 0.07, 1)),
                    ("light", "rect", (0.15, 0.08, 0.92, 0.28)), ("text", "rect", (0.2, 0.12, 0.85, 0.25)),
                    ("accent", "rect", (0.22, 0.40, 0.85, 0.85)))),
    "old_book": (0.68, (("body", "rrect", (0, 0, 1, 1)), ("dark", "rect", (0.04, 0.03, 0.1, 0.97)),
                        ("light", "rect", (0.3, 0.35, 0.85, 0.5)), ("text", "rect", (0.34, 0.38, 0.8, 0.47)))),
    "stack": (1.15, (("body", "rect", (0.06, 0, 0.92, 0.22)), ("body", "rect", (0, 0.25, 1, 0.47)),
                     ("body", "rect", (0.1, 0.5, 0.95, 0.72)), ("body", "rect", (0.02, 0.75, 0.98, 1)),
                     ("light", "rect", (0.06, 0.08, 0.92, 0.12)), ("accent", "rect", (0, 0.33, 1, 0.38)),
                     ("light", "rect", (0.1, 0.58, 0.95, 0.63)), ("accent", "rect", (0.02, 0.83, 0.98, 0.88)))),
    "magazine": (0.76, (("base", "rect", (0, 0, 1, 1)), ("body", "rect", (0, 0, 1, 0.2)),
                        ("body", "rect", (0.45, 0.26, 0.96, 0.8)), ("text", "rect", (0.05, 0.26, 0.4, 0.95)),
                        ("text", "rect", (0.45, 0.84, 0.96, 0.96)))),
    "case": (0.70, (("body", "rect", (0, 0.1, 1, 1)), ("accent", "rect", (0, 0, 1, 0.1)),
                    ("light", "rect", (0.1, 0.15, 0.7, 0.28)), ("dark", "rect", (0.05, 0.9, 0.3, 0.97)))),
    "screen": (1.35, (("base_dark", "rect", (0, 0, 1, 1)), ("body", "rect", (0.05, 0.05, 0.95, 0.8)),
                      ("text", "rect", (0.1, 0.84, 0.9, 0.96)))),
    "pad": (1.50, (("body", "ellipse", (0, 0.25, 0.42, 1)), ("body", "ellipse", (0.58, 0.25, 1, 1)),
                   ("body", "rrect", (0.12, 0.12, 0.88, 0.7)), ("accent", "ellipse", (0.66, 0.3, 0.76, 0.44)),
                   ("accent", "ellipse", (0.76, 0.42, 0.86, 0.56)), ("light", "rect", (0.18, 0.38, 0.34, 0.45)),
                   ("light", "rect", (0.23, 0.3, 0.29, 0.53)), ("dark", "ellipse", (0.36, 0.52, 0.48, 0.7)),
                   ("dark", "ellipse", (0.52, 0.52, 0.64, 0.7)))),
    "console": (1.60, (("body", "rrect", (0, 0.12, 1, 0.88)), ("dark", "rect", (0.26, 0.2, 0.74, 0.78)),
                       ("accent", "rect", (0.3, 0.26, 0.7, 0.72)), ("light", "ellipse", (0.08, 0.38, 0.18, 0.52)),
                       ("light", "ellipse", (0.82, 0.3, 0.9, 0.42)), ("light", "ellipse", (0.86, 0.5, 0.94, 0.62)))),
    "pile": (1.20, (("sub", "case", (0, 0, 0.38, 0.55)), ("sub", "case", (0.42, 0.02, 0.8, 0.57)),
                    ("sub", "pad", (0.05, 0.6, 0.55, 0.95)), ("sub", "console", (0.55, 0.62, 1, 0.9)))),
    "blob": (0.85, (("body", "ellipse", (0.1, 0.3, 0.9, 1)), ("body", "ellipse", (0.18, 0, 0.82, 0.58)),
                    ("body", "ellipse", (0.12, 0, 0.34, 0.22)), ("body", "ellipse", (0.66, 0, 0.88, 0.22)),
                    ("dark", "ellipse", (0.34, 0.22, 0.42, 0.32)), ("dark", "ellipse", (0.58, 0.22, 0.66, 0.32)),
                    ("light", "ellipse", (0.3, 0.55, 0.7, 0.9)))),
    "box": (1.00, (("body", "poly", ((0, 0.22), (0.78, 0.22), (0.78, 1), (0, 1))),
                   ("light", "poly", ((0, 0.22), (0.22, 0), (1, 0), (0.78, 0.22))),
                   ("dark", "poly", ((0.78, 0.22), (1, 0), (1, 0.78), (0.78, 1))),
                   ("accent", "rect", (0.06, 0.3, 0.72, 0.45)), ("text", "rect", (0.08, 0.8, 0.7, 0.95)))),
    "ball": (1.00, (("body", "ellipse", (0, 0, 1, 1)), ("dark", "line", ((0.15, 0.2), (0.5, 0.5), (0.85, 0.2))),
                    ("dark", "line", ((0.5, 0.5), (0.5, 1))), ("light", "ellipse", (0.25, 0.15, 0.4, 0.3)))),
    "swing": (1.10, (("dark", "line", ((0, 1), (0.2, 0), (0.8, 0), (1, 1))), ("dark", "line", ((0.4, 0), (0.4, 0.7))),
                     ("dark", "line", ((0.6, 0), (0.6, 0.7))), ("body", "rect", (0.33, 0.68, 0.67, 0.76)),
                     ("body", "rect", (0.1, 0, 0.9, 0.06)))),
    "drone": (1.30, (("dark", "line", ((0.12, 0.15), (0.88, 0.85))), ("dark", "line", ((0.88, 0.15), (0.12, 0.85))),
                     ("body", "ellipse", (0, 0, 0.26, 0.3)), ("body", "ellipse", (0.74, 0, 1, 0.3)),
                     ("body", "ellipse", (0, 0.7, 0.26, 1)), ("body", "ellipse", (0.74, 0.7, 1, 1)),
                     ("accent", "rrect", (0.36, 0.35, 0.64, 0.65)))),
    "car": (1.80, (("body", "poly", ((0, 0.45), (0.25, 0.4), (0.35, 0.1), (0.7, 0.1), (0.8, 0.4), (1, 0.5),
                                      (1, 0.8), (0, 0.8))),
                   ("light", "poly", ((0.38, 0.15), (0.52, 0.15), (0.52, 0.4), (0.3, 0.4))),
                   ("dark", "ellipse", (0.1, 0.62, 0.3, 1)), ("dark", "ellipse", (0.7, 0.62, 0.9, 1)))),
    "stroller": (0.95, (("body", "poly", ((0.1, 0.1), (0.6, 0.05), (0.62, 0.6), (0.1, 0.6))),
                        ("body", "rect", (0.1, 0.45, 0.8, 0.65)), ("dark", "line", ((0.8, 0.45), (1, 0))),
                        ("dark", "ellipse", (0.08, 0.78, 0.3, 1)), ("dark", "ellipse", (0.6, 0.78, 0.82, 1)),
                        ("dark", "line", ((0.2, 0.65), (0.7, 0.85))))),
    "sock": (0.75, (("body", "poly", ((0.2, 0), (0.62, 0), (0.62, 0.58), (1, 0.76), (0.92, 1), (0.3, 1),
                                       (0.2, 0.82))),
                    ("accent", "rect", (0.2, 0, 0.62, 0.14)), ("accent", "ellipse", (0.8, 0.76, 1, 0.98)))),
    "figure": (0.48, (("body", "ellipse", (0.3, 0, 0.7, 0.2)),
                      ("body", "poly", ((0.15, 0.22), (0.85, 0.22), (0.72, 0.6), (0.28, 0.6))),
                      ("body", "rect", (0.3, 0.58, 0.47, 0.94)), ("body", "rect", (0.53, 0.58, 0.7, 0.94)),
                      ("body", "poly", ((0.15, 0.22), (0, 0.55), (0.08, 0.58), (0.25, 0.32))),
                      ("body", "poly", ((0.85, 0.22), (1, 0.5), (0.92, 0.54), (0.75, 0.32))),
                      ("dark", "ellipse", (0.1, 0.92, 0.9, 1)), ("accent", "rect", (0.28, 0.5, 0.72, 0.58)))),
    "minis": (1.30, (("sub", "figure", (0, 0.1, 0.3, 1)), ("sub", "figure", (0.35, 0, 0.65, 0.92)),
                     ("sub", "figure", (0.7, 0.12, 1, 1)))),
    "card": (0.72, (("body", "rrect", (0, 0, 1, 1)), ("light", "rect", (0.08, 0.06, 0.92, 0.12)),
                    ("accent", "rect", (0.1, 0.15, 0.9, 0.55)), ("light", "rect", (0.08, 0.6, 0.92, 0.93)),
                    ("text", "rect", (0.12, 0.63, 0.88, 0.9)))),
    "cushion": (1.00, (("body", "rrect", (0, 0, 1, 1)), ("dark", "ellipse", (0.46, 0.46, 0.54, 0.54)))),
    "star": (1.00, (("body", "poly", _star(5, 0.45)), ("dark", "line", ((0.5, 0), (0.5, 0.06))))),
    "bottle": (0.45, (("body", "rrect", (0, 0.28, 1, 1)), ("body", "rect", (0.32, 0.06, 0.68, 0.3)),
                      ("accent", "rect", (0.28, 0, 0.72, 0.09)), ("light", "rect", (0, 0.48, 1, 0.8)),
                      ("text", "rect", (0.12, 0.52, 0.88, 0.76)))),
    "cabinet": (0.65, (("body", "rect", (0, 0, 1, 0.94)), ("dark", "line", ((0.5, 0.03), (0.5, 0.9))),
                       ("dark", "rect", (0.42, 0.45, 0.46, 0.52)), ("dark", "rect", (0.54, 0.45, 0.58, 0.52)),
                       ("dark", "rect", (0.04, 0.94, 0.12, 1)), ("dark", "rect", (0.88, 0.94, 0.96, 1)))),
    "chair": (0.80, (("body", "poly", ((0.12, 0), (0.88, 0), (0.84, 0.5), (0.16, 0.5))),
                     ("body", "rect", (0, 0.5, 1, 0.62)), ("dark", "rect", (0.04, 0.62, 0.12, 1)),
                     ("dark", "rect", (0.88, 0.62, 0.96, 1)))),
    "table": (1.40, (("body", "rect", (0, 0, 1, 0.14)), ("dark", "rect", (0.05, 0.14, 0.11, 1)),
                     ("dark", "rect", (0.89, 0.14, 0.95, 1)), ("dark", "rect", (0.25, 0.14, 0.3, 0.85)),
                     ("dark", "rect", (0.7, 0.14, 0.75, 0.85)))),
    "ring": (1.50, (("body", "ellipse", (0, 0.15, 1, 1)), ("light", "ellipse", (0.08, 0.27, 0.92, 0.88)),
                    ("accent", "ellipse", (0.14, 0.36, 0.86, 0.84)))),
    "tool": (1.25, (("body", "rrect", (0, 0.1, 0.82, 0.42)), ("body", "poly", ((0.38, 0.4), (0.62, 0.4),
                                                                           (0.58, 0.88), (0.36, 0.88))),
                    ("dark", "rect", (0.82, 0.2, 1, 0.3)), ("accent", "rect", (0.28, 0.84, 0.7, 1)),
                    ("dark", "rect", (0.1, 0.18, 0.3, 0.34)))),
    "bag": (0.75, (("body", "poly", ((0.08, 0.06), (0.92, 0.06), (1, 1), (0, 1))),
                   ("dark", "rect", (0.08, 0, 0.92, 0.06)), ("light", "ellipse", (0.2, 0.3, 0.8, 0.7)),
                   ("text", "rect", (0.3, 0.42, 0.7, 0.6)), ("accent", "rect", (0.05, 0.8, 0.95, 0.9)))),
    "animal": (1.35, (("body", "ellipse", (0.18, 0.3, 0.86, 0.78)), ("body", "ellipse", (0, 0.1, 0.34, 0.5)),
                      ("body", "poly", ((0.04, 0.2), (0.08, 0), (0.16, 0.14))),
                      ("body", "poly", ((0.2, 0.14), (0.28, 0), (0.3, 0.2))),
                      ("body", "rect", (0.26, 0.66, 0.34, 1)), ("body", "rect", (0.7, 0.66, 0.78, 1)),
                      ("dark", "line", ((0.85, 0.45), (1, 0.25))), ("dark", "ellipse", (0.1, 0.22, 0.15, 0.28)))),
    "notebook": (0.72, (("body", "rect", (0.08, 0, 1, 1)), ("light", "rect", (0.3, 0.2, 0.88, 0.38)),
                        ("text", "rect", (0.34, 0.24, 0.84, 0.34)),
                        *(("dark", "ellipse", (0, 0.04 + 0.09 * i, 0.14, 0.1 + 0.09 * i)) for i in range(10)))),
}
SHAPE_NAMES = tuple(sorted(SHAPES))
OBJECT_MARGIN = 8  # keeps the corners background, as in the real photos


@dataclass(frozen=True)
class Palette:
    """The colours of one object: two body colours for its texture and three flat detail colours."""

    body: tuple[int, int, int]
    body2: tuple[int, int, int]
    dark: tuple[int, int, int]
    light: tuple[int, int, int]
    accent: tuple[int, int, int]


def hsv_color(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    """An RGB colour from a hue in degrees and saturation/value in [0, 1]."""
    red, green, blue = colorsys.hsv_to_rgb((hue % 360) / 360, min(max(saturation, 0), 1), min(max(value, 0), 1))
    return int(red * 255), int(green * 255), int(blue * 255)


def make_palette(style: ClassStyle, rng: np.random.Generator) -> Palette:
    """Colours around the class's hue, or a random palette for a share of rows."""
    if rng.random() < PALETTE_NOISE_RATE:
        hue, saturation, value = rng.uniform(0, 360), rng.uniform(0.05, 0.9), rng.uniform(0.2, 0.95)
    else:
        hue = style.hue + HUE_JITTER * rng.standard_normal()
        saturation = style.saturation + rng.uniform(-SATURATION_JITTER, SATURATION_JITTER)
        value = style.value + rng.uniform(-VALUE_JITTER, VALUE_JITTER)
    second_hue = hue + pick_number((25.0, -35.0, 180.0), rng)
    return Palette(
        body=hsv_color(hue, saturation, value),
        body2=hsv_color(second_hue, saturation * rng.uniform(0.6, 1.1), value * rng.uniform(0.6, 1.1)),
        dark=hsv_color(hue, saturation * 0.6, value * 0.25),
        light=hsv_color(hue, 0.12, 0.93),
        accent=hsv_color(hue + rng.uniform(140, 220), rng.uniform(0.5, 0.9), rng.uniform(0.5, 0.95)),
    )


def pick_number(options: tuple, rng: np.random.Generator):
    """One of a few values, chosen with the row's generator."""
    return options[int(rng.integers(len(options)))]


def choose_look(code: int, rng: np.random.Generator) -> tuple[str, str, Palette]:
    """Shape, texture and palette of one row: the class's usual ones, each swapped at random at times."""
    style = CLASS_STYLES[code]
    shape = pick_number(style.shapes, rng)
    if rng.random() < SHAPE_NOISE_RATE:
        shape = pick_number(SHAPE_NAMES, rng)
    texture = pick_number(style.textures, rng)
    if rng.random() < TEXTURE_NOISE_RATE:
        texture = pick_number(TEXTURES, rng)
    return shape, texture, make_palette(style, rng)


def texture_mix(kind: str, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A (height, width) map in [0, 1] telling how much of the second body colour each pixel gets."""
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    period = float(rng.uniform(3, 18))  # in half-resolution pixels
    if kind == "gradient":
        angle = rng.uniform(0, 2 * math.pi)
        ramp = xs * math.cos(angle) + ys * math.sin(angle)
        return (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1.0)
    if kind == "stripes":
        angle = pick_number((0.0, math.pi / 4, math.pi / 2, 3 * math.pi / 4), rng)
        return ((xs * math.cos(angle) + ys * math.sin(angle)) // period % 2).astype(np.float32)
    if kind == "dots":
        radius = period * rng.uniform(0.15, 0.4)
        return (((xs % period) - period / 2) ** 2 + ((ys % period) - period / 2) ** 2 < radius**2).astype(np.float32)
    if kind == "checker":
        return ((xs // period + ys // period) % 2).astype(np.float32)
    if kind == "noise":
        return smooth_noise(width, height, cells=int(rng.integers(4, 14)), rng=rng)
    return np.zeros((height, width), dtype=np.float32)


def smooth_noise(width: int, height: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """Blotchy noise in [0, 1]: a few random cells upscaled bilinearly (like a busy photo)."""
    coarse = (rng.random((cells, cells)) * 255).astype(np.uint8)
    smooth = Image.fromarray(coarse).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(smooth, dtype=np.float32) / 255


@functools.lru_cache(maxsize=1)
def grain_tile() -> np.ndarray:
    """A fixed tile of unit Gaussian grain (same in every process), cropped at random per object."""
    return np.random.default_rng(GRAIN_TILE_SEED).standard_normal((GRAIN_TILE_SIZE, GRAIN_TILE_SIZE), np.float32)


def surface_palette(palette: Palette) -> bytes:
    """256 colours: every (mix level, light level) pair of the two body colours, as a PIL palette."""
    mix = np.linspace(0, 1, MIX_LEVELS, dtype=np.float32)[:, None, None]
    light = np.linspace(*LIGHT_RANGE, LIGHT_LEVELS, dtype=np.float32)[None, :, None]
    first, second = np.array(palette.body, np.float32), np.array(palette.body2, np.float32)
    colours = (first + mix * (second - first)) * light
    return np.clip(colours, 0, 255).astype(np.uint8).tobytes()


def make_texture(kind: str, palette: Palette, width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """The object's surface: a mix of its two body colours, shaded top to bottom, with grain."""
    # Built at half resolution as a 256-colour (mix x light) palette image: 2-D byte maps instead of
    # float RGB arithmetic, several times cheaper, and the grain still looks like a photo's.
    small_width, small_height = max(width // 2, 1), max(height // 2, 1)
    top, left = (int(v) for v in rng.integers(0, GRAIN_TILE_SIZE - IMAGE_SIZE // 2, size=2))
    grain = grain_tile()[top:top + small_height, left:left + small_width] * np.float32(rng.uniform(*GRAIN_RANGE))
    light = grain + np.linspace(1.08, 0.82, small_height, dtype=np.float32)[:, None]
    light_step = (LIGHT_RANGE[1] - LIGHT_RANGE[0]) / (LIGHT_LEVELS - 1)
    light_index = np.clip((light - LIGHT_RANGE[0]) / light_step + 0.5, 0, LIGHT_LEVELS - 1).astype(np.uint8)
    mix_index = (texture_mix(kind, small_width, small_height, rng) * (MIX_LEVELS - 1) + 0.5).astype(np.uint8)
    surface = Image.fromarray(mix_index * np.uint8(LIGHT_LEVELS) + light_index, "L")
    surface.putpalette(surface_palette(palette))  # turns the L image into a P image
    return surface.resize((width, height), Image.Resampling.NEAREST)


Box = tuple[int, int, int, int]


def object_box(aspect: float, rng: np.random.Generator) -> Box:
    """Where the object sits: a random box covering 20-80% of the frame, away from the corners."""
    area = rng.uniform(*OBJECT_AREA_RANGE) * IMAGE_SIZE**2
    aspect *= 1 + rng.uniform(-ASPECT_JITTER, ASPECT_JITTER)
    width, height = math.sqrt(area * aspect), math.sqrt(area / aspect)
    limit = IMAGE_SIZE - 2 * OBJECT_MARGIN
    shrink = min(1.0, limit / width, limit / height)
    width, height = max(int(width * shrink), 16), max(int(height * shrink), 16)
    left = int(rng.integers(OBJECT_MARGIN, IMAGE_SIZE - OBJECT_MARGIN - width + 1))
    top = int(rng.integers(OBJECT_MARGIN, IMAGE_SIZE - OBJECT_MARGIN - height + 1))
    return left, top, left + width, top + height


def scale_points(geometry, box: Box) -> list[tuple[float, float]]:
    """Unit-box points (or a unit box given as x0, y0, x1, y1) mapped into a pixel box."""
    left, top, right, bottom = box
    pairs = geometry if isinstance(geometry[0], tuple) else (geometry[:2], geometry[2:])
    return [(left + x * (right - left), top + y * (bottom - top)) for x, y in pairs]


def draw_primitive(draw: ImageDraw.ImageDraw, kind: str, geometry, box: Box, fill) -> None:
    """Draw one rect, rounded rect, ellipse, polygon or thick line of a shape."""
    points = scale_points(geometry, box)
    size = min(box[2] - box[0], box[3] - box[1])
    if kind in ("rect", "rrect", "ellipse"):
        (x0, y0), (x1, y1) = points
        corners = [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]
        if kind == "rect":
            draw.rectangle(corners, fill=fill)
        elif kind == "rrect":
            draw.rounded_rectangle(corners, radius=max(size * 0.12, 1), fill=fill)
        else:
            draw.ellipse(corners, fill=fill)
    elif kind == "poly":
        draw.polygon(points, fill=fill)
    else:
        draw.line(points, fill=fill, width=max(int(size * 0.05), 2), joint="curve")


def draw_text_lines(draw: ImageDraw.ImageDraw, region: Box, color, rng: np.random.Generator) -> None:
    """Scribble lines of 'text' in a region, like titles and captions on packaging."""
    left, top, right, bottom = region
    lines = int(rng.integers(2, 7))
    pitch = max((bottom - top) / lines, 2.0)
    for i in range(lines):
        y = top + i * pitch
        end = left + (right - left) * rng.uniform(0.35, 1.0)
        draw.rectangle([left, y, end, y + max(pitch * 0.45, 1)], fill=color)


ROLE_COLORS = {"base": "light", "base_dark": "dark", "dark": "dark", "light": "light", "accent": "accent"}


def draw_shape(image: Image.Image, shape: str, box: Box, texture: str, palette: Palette,
               rng: np.random.Generator) -> None:
    """Draw a shape's base, textured body and details into its box on the image."""
    elements = SHAPES[shape][1]
    draw = ImageDraw.Draw(image)
    for role, kind, geometry in elements:
        if role.startswith("base"):
            draw_primitive(draw, kind, geometry, box, getattr(palette, ROLE_COLORS[role]))
    width, height = box[2] - box[0], box[3] - box[1]
    mask = Image.new("L", (width, height), 0)
    mask_draw = ImageDraw.Draw(mask)
    bodies = [(kind, geometry) for role, kind, geometry in elements if role == "body"]
    for kind, geometry in bodies:
        draw_primitive(mask_draw, kind, geometry, (0, 0, width, height), 255)
    if bodies:
        image.paste(make_texture(texture, palette, width, height, rng), box[:2], mask)
    for role, kind, geometry in elements:
        if role == "sub":
            sub_box = tuple(int(v) for point in scale_points(geometry, box) for v in point)
            draw_shape(image, kind, sub_box, texture, palette, rng)
        elif role == "text":
            region = tuple(int(v) for point in scale_points(geometry, box) for v in point)
            draw_text_lines(draw, region, palette.dark, rng)
        elif role in ("dark", "light", "accent"):
            draw_primitive(draw, kind, geometry, box, getattr(palette, ROLE_COLORS[role]))


def make_background(rng: np.random.Generator) -> Image.Image:
    """A near-white studio background (245-255 per channel, slightly warm or cool)."""
    level = int(rng.integers(247, 256))
    tint = rng.integers(-2, 3, size=3)
    color = tuple(int(np.clip(level + t, 245, 255)) for t in tint)
    return Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), color)


def draw_shadow(image: Image.Image, box: Box, rng: np.random.Generator) -> None:
    """A soft grey ellipse under the object, as studio photos have."""
    left, top, right, bottom = box
    depth = max((bottom - top) // 10, 4)
    shade = int(rng.integers(215, 238))
    lower = min(bottom + depth // 2, IMAGE_SIZE - OBJECT_MARGIN // 2)
    ImageDraw.Draw(image).ellipse([left + 4, bottom - depth, right - 4, lower], fill=(shade, shade, shade))


def draw_distractors(image: Image.Image, rng: np.random.Generator) -> None:
    """A few small extras (badges, logos, caption lines, a second mini item) that carry no class signal."""
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(0, MAX_DISTRACTORS + 1))):
        size = int(rng.integers(18, 70))
        left = int(rng.integers(OBJECT_MARGIN + 2, IMAGE_SIZE - OBJECT_MARGIN - 2 - size))
        top = int(rng.integers(OBJECT_MARGIN + 2, IMAGE_SIZE - OBJECT_MARGIN - 2 - size))
        color = hsv_color(rng.uniform(0, 360), rng.uniform(0.3, 1), rng.uniform(0.3, 0.95))
        kind = int(rng.integers(4))
        if kind == 0:
            draw.ellipse([left, top, left + size, top + size], fill=color)
        elif kind == 1:
            draw.rectangle([left, top, left + size * 2, top + size // 2], fill=color)
        elif kind == 2:
            draw_text_lines(draw, (left, top, left + size * 2, top + size // 2), color, rng)
        else:
            palette = make_palette(CLASS_STYLES[pick_number(tuple(CLASS_STYLES), rng)], rng)
            draw_shape(image, pick_number(SHAPE_NAMES, rng), (left, top, left + size, top + size), "flat",
                       palette, rng)


def render_product_image(code: int, rng: np.random.Generator) -> Image.Image:
    """A 500x500 RGB product photo for the class: background, shadow, object, distractors."""
    shape, texture, palette = choose_look(code, rng)
    image = make_background(rng)
    box = object_box(SHAPES[shape][0], rng)
    if rng.random() < 0.5:
        draw_shadow(image, box, rng)
    draw_shape(image, shape, box, texture, palette, rng)
    draw_distractors(image, rng)
    return image


def encode_jpeg(image: Image.Image) -> bytes:
    """Progressive JPEG bytes, as the marketplace serves its photos."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY, progressive=True, optimize=False)
    return buffer.getvalue()


# What happens to a row's photo in the archive.
IMAGE_OK, IMAGE_MISSING, IMAGE_CORRUPT = "ok", "missing", "corrupt"


def corrupt_jpeg(data: bytes, rng: np.random.Generator) -> bytes:
    """Unreadable bytes: a JPEG cut inside its headers, or random garbage."""
    if rng.random() < 0.5:
        # Cut before the frame header: undecodable even by readers that accept truncated scans.
        frame_header = data.find(b"\xff\xc2")
        return data[: int(rng.integers(16, max(frame_header, 17)))]
    return rng.bytes(int(rng.integers(200, 4000)))


def make_image_bytes(task: tuple[list[int], int, str]) -> bytes | None:
    """Worker entry point: (row seed, code, fate) -> the row's JPEG, broken bytes, or None if missing."""
    seed_key, code, fate = task
    if fate == IMAGE_MISSING:
        return None
    rng = np.random.default_rng(seed_key)
    data = encode_jpeg(render_product_image(code, rng))
    return corrupt_jpeg(data, rng) if fate == IMAGE_CORRUPT else data
