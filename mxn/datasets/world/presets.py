"""Camera presets: what each synthetic traffic camera looks at.

They differ the way the dissertation's eight traffic videos do: how many
classes appear, how dense and fast the traffic is, how much objects occlude
each other, and the light. Each lane is a horizontal path at a depth; its
baseline ``y`` (as a fraction of the frame height) sets the perspective
scale, so far lanes carry small objects and near lanes big ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Lane:
    """A path objects travel along, left to right (+1) or right to left (-1)."""

    y: float
    direction: int
    kinds: dict[str, float]
    rate: float  # mean arrivals per second
    speed: tuple[float, float]  # metres per second, uniform range


@dataclass(frozen=True)
class Preset:
    """One synthetic traffic camera."""

    name: str
    description: str
    lanes: tuple[Lane, ...]
    horizon: float = 0.32
    ppm_near: float = 30.0  # pixels per metre at the bottom of the frame
    night: bool = False
    trees: int = 3
    shake_px: float = 1.0
    noise: float = 4.0
    cloud_shadows: bool = True
    buildings: bool = False
    exposure: float = 0.5  # share of a frame interval the shutter is open (motion blur)
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def classes(self) -> tuple[str, ...]:
        """Every class that can appear, in the world's canonical order."""
        from .sprites import CLASSES

        seen = {k for lane in self.lanes for k, w in lane.kinds.items() if w > 0}
        return tuple(c for c in CLASSES if c in seen)


_ROAD_MIX = {"car": 0.34, "van": 0.18, "truck": 0.14, "bus": 0.12, "motorcyclist": 0.12, "cyclist": 0.1}
_WALK_MIX = {"person": 0.7, "cyclist": 0.3}

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="quiet_road",
            description="a residential street: cars and pedestrians only, light traffic, daylight",
            lanes=(
                Lane(0.60, -1, {"person": 1.0}, 0.10, (1.0, 1.8)),
                Lane(0.72, 1, {"car": 1.0}, 0.12, (7, 13)),
                Lane(0.84, -1, {"car": 1.0}, 0.12, (7, 13)),
                Lane(0.96, 1, {"person": 1.0}, 0.10, (1.0, 1.8)),
            ),
            trees=4,
        ),
        Preset(
            name="highway",
            description="a four-lane highway: fast vehicles, motion blur, few pedestrians",
            lanes=(
                Lane(0.55, -1, {"car": 0.5, "van": 0.2, "truck": 0.2, "bus": 0.1}, 0.25, (20, 30)),
                Lane(
                    0.66,
                    -1,
                    {"car": 0.55, "van": 0.2, "truck": 0.1, "bus": 0.05, "motorcyclist": 0.1},
                    0.3,
                    (24, 34),
                ),
                Lane(
                    0.80,
                    1,
                    {"car": 0.55, "van": 0.2, "truck": 0.1, "bus": 0.05, "motorcyclist": 0.1},
                    0.3,
                    (24, 34),
                ),
                Lane(0.94, 1, {"car": 0.5, "van": 0.2, "truck": 0.2, "bus": 0.1}, 0.25, (20, 30)),
            ),
            exposure=0.8,
            trees=2,
            shake_px=1.5,
        ),
        Preset(
            name="downtown",
            description="a busy junction: every class, dense, slow, heavy occlusion (the hard case)",
            lanes=(
                Lane(0.50, 1, _WALK_MIX, 0.25, (1.0, 2.0)),
                Lane(0.58, -1, _ROAD_MIX, 0.5, (5, 11)),
                Lane(0.66, 1, _ROAD_MIX, 0.5, (5, 11)),
                Lane(0.76, -1, _ROAD_MIX, 0.5, (5, 11)),
                Lane(0.86, 1, _ROAD_MIX, 0.5, (5, 11)),
                Lane(0.97, -1, _WALK_MIX, 0.3, (1.0, 2.0)),
            ),
            buildings=True,
            trees=2,
            ppm_near=34.0,
        ),
        Preset(
            name="night",
            description="a main road at night: headlights, dark bodies, sensor noise",
            lanes=(
                Lane(0.62, -1, _ROAD_MIX, 0.18, (8, 16)),
                Lane(0.78, 1, _ROAD_MIX, 0.18, (8, 16)),
                Lane(0.95, -1, _WALK_MIX, 0.08, (1.0, 1.8)),
            ),
            night=True,
            noise=9.0,
            cloud_shadows=False,
            trees=2,
        ),
    )
}


def get_preset(name: str) -> Preset:
    """A preset by name, with a clear error listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown camera preset {name!r}; choose one of {sorted(PRESETS)}") from None
