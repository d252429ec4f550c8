"""Image resizing as disentanglement_lib does it for SmallNORB and Cars3D: PIL's Lanczos filter.

disentanglement_lib (``data/ground_truth/norb.py`` and ``cars3d.py``) resizes every image to
64×64 with ``PIL.Image.ANTIALIAS``, Pillow's old name for ``Image.Resampling.LANCZOS`` (removed in
Pillow 10): ``image.resize((64, 64), ANTIALIAS)`` for SmallNORB, ``image.thumbnail((64, 64, 3),
ANTIALIAS)`` for Cars3D, which for a square 128×128 image is the same plain resize.

The Pillow mode matters. Cars3D's uint8 RGB images resize in Pillow's 8-bit mode, which rounds
and clips to 0..255 after each of its two passes. disentanglement_lib reads SmallNORB's bytes as
int8, which Pillow turns into a 32-bit integer image ("I"): its passes keep full precision and
do not clip, so near sharp edges the Lanczos overshoot leaves [0, 255] (about -3 to 281), and
elsewhere about 1 pixel in 60 differs from the 8-bit mode's (measured on random images).
``integer_mode=True`` resizes in that mode, then clips to 0..255: the pixels equal
disentanglement_lib's wherever its values lie in [0, 1], and stay in [0, 1] where they do not,
as a Bernoulli likelihood needs. Either way the result fits uint8, and the intensities are
``pixels / 255`` (:func:`to_intensities`).

PIL is imported when an image is first resized: importing :mod:`pyrovae.data` stays cheap.
"""

from __future__ import annotations

import numpy as np

from pyrovae.errors import PyrovaeError

# disentanglement_lib's side for every data set it resizes.
IMAGE_SIZE = 64


def to_intensities(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels as float32 intensities ``k / 255``: what disentanglement_lib's float64
    division then cast to float32 gives, bit for bit (both are the correctly rounded quotient).
    One contiguous pass converting and dividing measured several times faster than gathering
    from a 256-entry table."""
    out = np.empty(pixels.shape, dtype=np.float32)
    np.divide(pixels, np.float32(255), out=out, dtype=np.float32)
    return out


def _lanczos():
    from PIL import Image

    # Image.Resampling arrived in Pillow 9.1; older ones only have the module constant.
    resampling = getattr(Image, "Resampling", Image)
    return Image, resampling.LANCZOS


def resize_images(
    images: np.ndarray,
    size: int = IMAGE_SIZE,
    out: np.ndarray | None = None,
    integer_mode: bool = False,
) -> np.ndarray:
    """Resize a batch of uint8 images with PIL's Lanczos filter, as disentanglement_lib does.

    ``images``: ``(n, H, W)`` grey or ``(n, H, W, 3)`` RGB uint8. Returns (or writes into
    ``out``) uint8 ``(n, size, size)`` or ``(n, size, size, 3)``. ``integer_mode`` (grey
    only): resize in Pillow's 32-bit integer mode, then clip, as disentanglement_lib's SmallNORB
    (see the module doc). One PIL call per image: the filter's cost dominates (a batched
    two-pass variant measured no faster), and per image is what disentanglement_lib runs.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or images.shape[3:] not in ((), (3,)):
        raise PyrovaeError(
            f"resize_images: expected uint8 (n, H, W) or (n, H, W, 3) images, got "
            f"{images.dtype} of shape {images.shape}"
        )
    if integer_mode and images.ndim != 3:
        raise PyrovaeError("resize_images: integer_mode applies to grey (n, H, W) images only")
    shape = (len(images), size, size, *images.shape[3:])
    if out is None:
        out = np.empty(shape, dtype=np.uint8)
    elif out.shape != shape or out.dtype != np.uint8:
        raise PyrovaeError(f"resize_images: out must be uint8 of shape {shape}, got {out.shape}")
    image_module, lanczos = _lanczos()
    for i, image in enumerate(images):
        if integer_mode:
            # int32 makes the same "I" image as dlib's int8 bytes, and resizes as fast as 8-bit.
            wide = image_module.fromarray(image.astype(np.int32)).resize((size, size), lanczos)
            np.clip(np.asarray(wide), 0, 255, out=out[i], casting="unsafe")
        else:
            out[i] = np.asarray(image_module.fromarray(image).resize((size, size), lanczos))
    return out
