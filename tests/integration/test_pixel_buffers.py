"""adapters/images/pixel_buffers.py: a large decode goes into an array kept from the last one only when
nothing refers to that array any more; the pixels are the same as a fresh decode's."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from adapters.images.decoder import decode_jpeg
from adapters.images.pixel_buffers import PIXEL_BUFFERS, PixelBuffers
from adapters.inference.executor import trim_memory
from tests.support.photos import GROUP_PHOTO, SELFIE
from tests.support.services import decoder

SHAPE = (40, 30, 3)


@pytest.fixture(autouse=True)
def no_idle_trim_pending() -> None:
    """An inference executor of an earlier test (the app's, in-process) gives every kept array back
    IDLE_TRIM_SECONDS after its last job, from a timer thread: wait those out, so that the kept
    arrays these tests count are theirs alone."""
    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer):
            thread.join()


def plain(data: bytes) -> np.ndarray:
    return np.asarray(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))


def test_an_array_nothing_refers_to_is_handed_out_again() -> None:
    buffers = PixelBuffers(min_bytes=0)
    first = buffers.array(SHAPE)
    address = first.__array_interface__["data"][0]
    del first
    again = buffers.array(SHAPE)
    assert again.__array_interface__["data"][0] == address
    assert again.shape == SHAPE and again.dtype == np.uint8 and again.flags.c_contiguous


def test_an_array_in_use_or_viewed_is_never_handed_out_again() -> None:
    buffers = PixelBuffers(min_bytes=0, per_thread=1)
    first = buffers.array(SHAPE)
    first[:] = 7
    view = first[10:20, 5:9]  # a crop of an image outlives the image itself
    del first
    second = buffers.array(SHAPE)
    second[:] = 9
    assert not np.shares_memory(view, second)
    assert (view == 7).all()
    del view
    assert np.shares_memory(buffers.array(SHAPE), second) is False  # `second` is still alive
    del second
    assert buffers.kept_bytes() == np.prod(SHAPE)


def test_a_smaller_request_reuses_a_larger_array_and_a_larger_one_replaces_it() -> None:
    buffers = PixelBuffers(min_bytes=0, per_thread=1)
    large = buffers.array((50, 50, 3))
    address = large.__array_interface__["data"][0]
    del large
    small = buffers.array(SHAPE)
    assert small.__array_interface__["data"][0] == address and small.shape == SHAPE
    del small
    buffers.array((60, 60, 3))
    assert buffers.kept_bytes() == 60 * 60 * 3


def test_arrays_outside_the_bounds_are_never_kept() -> None:
    buffers = PixelBuffers(min_bytes=100, max_bytes=1000)
    buffers.array((3, 3, 3))  # 27 bytes
    buffers.array((20, 20, 3))  # 1,200 bytes
    assert buffers.kept_bytes() == 0


def test_each_thread_keeps_its_own_and_release_drops_them_all() -> None:
    buffers = PixelBuffers(min_bytes=0)
    held: list[np.ndarray] = []
    mine = buffers.array(SHAPE)
    thread = threading.Thread(target=lambda: held.append(buffers.array(SHAPE)))
    thread.start()
    thread.join()
    assert not np.shares_memory(mine, held[0])
    held.clear()
    del mine
    assert buffers.kept_bytes() == 2 * np.prod(SHAPE)
    buffers.release()
    assert buffers.kept_bytes() == 0


@pytest.mark.parametrize("orientation", range(1, 9))
def test_decodes_into_kept_arrays_give_a_fresh_decodes_pixels_in_every_orientation(orientation: int) -> None:
    from tests.integration.test_jpeg_parity import encode, with_orientation

    pixels = cv2.imread(str(SELFIE), cv2.IMREAD_COLOR)[:200, :150]
    data = with_orientation(encode(pixels), orientation)
    buffers = PixelBuffers(min_bytes=0)
    for _ in range(3):  # the second and third decodes write into the first's arrays
        kept = decode_jpeg(data, buffers=buffers)
        assert kept is not None
        assert np.array_equal(kept, plain(data))
        del kept
    assert buffers.kept_bytes() > 0


def test_a_phone_photo_decoded_twice_holds_its_own_pixels_while_the_next_is_decoded() -> None:
    """The service's decoder keeps phone-sized arrays: two images alive at once (a batch's group)
    never share memory, and each keeps a fresh decode's pixels."""
    from tests.integration.test_jpeg_parity import encode, phone_sized, stored_sideways

    trim_memory()
    pixels = phone_sized(GROUP_PHOTO)
    upright, sideways = encode(pixels), stored_sideways(pixels)
    first = decoder().decode(upright)
    second = decoder().decode(sideways)
    assert not np.shares_memory(first.pixels, second.pixels)
    assert np.array_equal(first.pixels, plain(upright))
    assert np.array_equal(second.pixels, plain(sideways))
    assert PIXEL_BUFFERS.kept_bytes() > 0
    address = first.pixels.__array_interface__["data"][0]
    del first
    third = decoder().decode(upright)
    assert third.pixels.__array_interface__["data"][0] == address  # the first's array, free again
    assert np.array_equal(third.pixels, plain(upright))
    trim_memory()  # an idle worker gives them back
    assert PIXEL_BUFFERS.kept_bytes() == 0


def test_a_larger_image_or_one_decoded_by_opencv_frees_the_unused_arrays_first() -> None:
    """A worker's peak stays one large image's: kept arrays are not held beside it."""
    buffers = PixelBuffers(min_bytes=0, max_bytes=10_000)
    in_use = buffers.array(SHAPE)
    buffers.array(SHAPE)  # unused at once
    assert buffers.kept_bytes() == 2 * np.prod(SHAPE)
    buffers.array((100, 100, 3))  # over max_bytes
    assert buffers.kept_bytes() == np.prod(SHAPE)  # the one in use stays kept
    del in_use

    from tests.integration.test_jpeg_parity import encode, phone_sized

    trim_memory()
    photo = phone_sized(GROUP_PHOTO)
    decoder().decode(encode(photo))
    assert PIXEL_BUFFERS.kept_bytes() > 0
    ok, png = cv2.imencode(".png", photo[:2000, :2000])
    assert ok
    decoder().decode(png.tobytes())
    assert PIXEL_BUFFERS.kept_bytes() == 0


def test_a_trim_after_a_job_keeps_the_arrays_and_an_idle_worker_gives_them_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from adapters.inference import executor
    from tests.integration.test_jpeg_parity import encode, phone_sized

    monkeypatch.setattr(executor, "free_heap_bytes", lambda: executor.KEEP_FREE_HEAP_BYTES + 1)
    trim_memory()
    decoder().decode(encode(phone_sized(GROUP_PHOTO)))
    kept = PIXEL_BUFFERS.kept_bytes()
    assert kept > 0
    executor.trim_if_heap_over()  # the heap is over its limit: trimmed, the arrays are not heap
    assert PIXEL_BUFFERS.kept_bytes() == kept
    executor.trim_memory()  # idle
    assert PIXEL_BUFFERS.kept_bytes() == 0
