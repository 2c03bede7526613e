"""app/cli_photos.py's rules without a service: photo ids from paths, the walk, and a run's summary and
exit status on a target that answers from memory (the real service runs in tests/e2e/test_cli.py)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import Any

import pytest

from app.cli_photos import MAX_PHOTO_ID, index_photos, photo_files, photo_id
from app.cli_remote import RemoteError
from domain.errors import FaceServiceError, InvalidInput


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("a.jpg", "a.jpg"),
        ("2026/party/IMG 0042.JPG", "2026:party:IMG_0042.JPG"),
        ("./x/y.png", "x:y.png"),
        ("/abs/olé.jpg", "abs:ol_.jpg"),
        ("a#b?c%d.jpg", "a_b_c_d.jpg"),
    ],
)
def test_a_photo_id_is_the_relative_path_with_colons_and_underscores(relative: str, expected: str) -> None:
    assert photo_id(PurePath(relative)) == expected


def test_folders_are_walked_in_name_order_and_lists_give_the_path_as_written(tmp_path: Path) -> None:
    for name in ("b/2.jpg", "b/1.JPEG", "a.png", "notes.txt", "c/d/e.webp"):
        (tmp_path / "photos" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "photos" / name).write_bytes(b"x")
    listing = tmp_path / "list.txt"
    listing.write_text("photos/a.png\n\n  other/f.jpg  \n")
    found = [
        (str(path.relative_to(tmp_path)) if path.is_absolute() else str(path), id_)
        for path, id_ in photo_files([tmp_path / "photos"], [listing])
    ]
    assert found == [
        ("photos/a.png", "a.png"),
        ("photos/b/1.JPEG", "b:1.JPEG"),
        ("photos/b/2.jpg", "b:2.jpg"),
        ("photos/c/d/e.webp", "c:d:e.webp"),
        ("photos/a.png", "photos:a.png"),
        ("other/f.jpg", "other:f.jpg"),
    ]


class MemoryTarget:
    """Photos already there, and an answer per photo id: a face count, or an error."""

    def __init__(self, existing: list[str], errors: dict[str, FaceServiceError]) -> None:
        self.existing = existing
        self.errors = errors
        self.indexed: list[str] = []

    def photo_ids(self, collection: str) -> Iterator[str]:
        yield from self.existing

    def index(self, collection: str, photo_id: str, data: bytes, options: dict[str, Any]) -> dict[str, Any]:
        if photo_id in self.errors:
            raise self.errors[photo_id]
        self.indexed.append(photo_id)
        faces = [{"face_id": "0" * 32}] * len(data)
        unindexed = [{"reasons": ["LOW_QUALITY", "LOW_SHARPNESS"]}]
        return {"photo_id": photo_id, "duplicate": False, "faces": faces, "unindexed": unindexed}

    def default_concurrency(self) -> int:
        return 2


def run(
    tmp_path: Path, target: MemoryTarget, capsys: pytest.CaptureFixture[str]
) -> tuple[int, list[dict[str, Any]], str]:
    args = argparse.Namespace(
        collection="events", paths=[tmp_path / "in"], lists=[], concurrency=None, quality="medium",
        max_faces=None, min_face_size=None, json=True,
    )  # fmt: skip
    status = index_photos(target, args)
    printed = capsys.readouterr()
    return status, [json.loads(line) for line in printed.out.splitlines()], printed.err


def test_a_run_skips_what_is_there_reports_failures_and_counts_faces(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "a.jpg").write_bytes(b"xx")  # two "faces"
    (tmp_path / "in" / "b.jpg").write_bytes(b"x")
    (tmp_path / "in" / "bad.jpg").write_bytes(b"x")
    (tmp_path / "in" / "sub" / "c.jpg").write_bytes(b"xxx")
    (tmp_path / "in" / "sub:c.jpg").write_bytes(b"x")  # the same id as sub/c.jpg, walked first: that one fails
    (tmp_path / "in" / ("long" * 40 + ".jpg")).write_bytes(b"x")
    target = MemoryTarget(["b.jpg"], {"bad.jpg": InvalidInput("not an image", code="invalid_image")})
    status, records, _ = run(tmp_path, target, capsys)
    assert status == 1
    *photos, summary = records
    assert sorted(target.indexed) == ["a.jpg", "sub:c.jpg"]
    failed = {
        Path(record["file"]).relative_to(tmp_path / "in"): record["code"] for record in photos if "code" in record
    }
    assert failed == {
        Path("bad.jpg"): "invalid_image",
        Path("sub/c.jpg"): "duplicate_photo_id",
        Path("long" * 40 + ".jpg"): "invalid_photo_id",
    }
    assert len("long" * 40 + ".jpg") > MAX_PHOTO_ID
    assert summary["summary"]["seconds"] > 0 and summary["summary"]["photos_per_s"] > 0
    assert {k: v for k, v in summary["summary"].items() if k not in ("seconds", "photos_per_s")} == {
        "indexed": 2, "already_indexed": 0, "skipped": 1, "faces": 3, "photos_without_faces": 0,
        "unindexed_faces": 2, "unindexed": {"LOW_QUALITY": 2}, "unindexed_quality_reasons": {"LOW_SHARPNESS": 2},
        "failed": 3,
        "failures": {"duplicate_photo_id": 1, "invalid_image": 1, "invalid_photo_id": 1},
    }  # fmt: skip


def test_a_photo_the_service_is_still_too_busy_for_fails_and_the_run_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "in").mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (tmp_path / "in" / name).write_bytes(b"x")
    target = MemoryTarget([], {"b.jpg": RemoteError("at capacity", "overloaded", 503)})
    status, records, _ = run(tmp_path, target, capsys)
    assert status == 1 and sorted(target.indexed) == ["a.jpg", "c.jpg"]
    assert records[-1]["summary"]["failures"] == {"overloaded": 1}


def test_a_missing_collection_stops_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_bytes(b"x")
    missing = FaceServiceError("no such collection")
    missing.code = "collection_not_found"
    with pytest.raises(FaceServiceError):
        run(tmp_path, MemoryTarget([], {"a.jpg": missing}), capsys)


def test_on_a_terminal_a_progress_bar_counts_photos_faces_and_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "in").mkdir()
    for name in ("a.jpg", "b.jpg", "bad.jpg"):
        (tmp_path / "in" / name).write_bytes(b"xx")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    status, _, bar = run(
        tmp_path, MemoryTarget([], {"bad.jpg": InvalidInput("not an image", code="invalid_image")}), capsys
    )
    assert status == 1
    assert "/3 " in bar and "photo/s" in bar, bar
