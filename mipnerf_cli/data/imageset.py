"""ImageSet: one split of a scene in memory, pixels as uint8, rays made on demand.

Rays are never stored: a full lego multiscale train split is about 85M pixels, and seven
float32 ray fields per pixel would take ~5.8 GB where the RGBA bytes take 340 MB. Each ray
is instead computed from its image's 3x3 matrix ``cam2world[:3, :3] @ pix2cam`` in float64
(as the reference's numpy code does) and handed out as float32.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from mipnerf_cli.core.rays import RayBundle, pinhole_radius


@dataclasses.dataclass(eq=False)
class ImageSet:
    """The images and cameras of one split; any pixel's ray and colour on request.

    names:       I image names (file name without extension; the relative path when stems clash).
    images:      I uint8 tensors (H, W, 4), RGBA, non-premultiplied; images without an alpha
                 channel were given alpha 255. Views into ``pixels_rgba``.
    heights, widths: I ints.
    levels:      I ints: the scale index (0 = full resolution; always 0 for Blender data).
    cam2world:   (I, 3, 4) float64 camera-to-world matrices.
    focal:       (I,) float64 focal lengths in pixels.
    pix2cam:     (I, 3, 3) float64 inverse intrinsics (see ``mipnerf_cli.data.cameras``).
    lossmult:    (I,) float32 per-image loss weight (1, or 4**level for multiscale data).
    near, far:   integration bounds, the same for every ray.
    white_bkgd:  pixel colours are composited on white (``rgb * a + (1 - a)``) when true,
                 the plain RGB channels otherwise.
    multiscale:  the set came from a converted (metadata.json) scene.
    pixels_rgba: (num_pixels, 4) uint8, every image flattened row-major and concatenated in
                 order. Built from ``images`` when not given.

    Flat pixel index p (0 <= p < num_pixels) is pixel ``p - offsets[i]`` (row-major) of the
    image i with ``offsets[i] <= p < offsets[i + 1]``.
    """

    names: list[str]
    images: list[torch.Tensor]
    heights: list[int]
    widths: list[int]
    levels: list[int]
    cam2world: torch.Tensor
    focal: torch.Tensor
    pix2cam: torch.Tensor
    lossmult: torch.Tensor
    near: float = 2.0
    far: float = 6.0
    white_bkgd: bool = True
    multiscale: bool = False
    pixels_rgba: torch.Tensor | None = None

    def __post_init__(self) -> None:
        count = len(self.names)
        lengths = {
            "images": len(self.images),
            "heights": len(self.heights),
            "widths": len(self.widths),
            "levels": len(self.levels),
            "cam2world": self.cam2world.shape[0],
            "focal": self.focal.shape[0],
            "pix2cam": self.pix2cam.shape[0],
            "lossmult": self.lossmult.shape[0],
        }
        wrong = {key: value for key, value in lengths.items() if value != count}
        if wrong:
            raise ValueError(f"ImageSet: {count} names but {wrong}")
        sizes = torch.tensor([h * w for h, w in zip(self.heights, self.widths)], dtype=torch.int64)
        self.offsets = torch.zeros(count + 1, dtype=torch.int64)
        self.offsets[1:] = torch.cumsum(sizes, 0)
        if self.pixels_rgba is None:
            flat = [image.reshape(-1, 4) for image in self.images]
            self.pixels_rgba = torch.cat(flat) if flat else torch.zeros(0, 4, dtype=torch.uint8)
            self.images = [
                self.pixels_rgba[self.offsets[i] : self.offsets[i + 1]].view(h, w, 4)
                for i, (h, w) in enumerate(zip(self.heights, self.widths))
            ]
        if self.pixels_rgba.shape != (int(self.offsets[-1]), 4) or self.pixels_rgba.dtype != torch.uint8:
            raise ValueError(
                f"ImageSet: pixels_rgba must be uint8 ({int(self.offsets[-1])}, 4), "
                f"got {tuple(self.pixels_rgba.shape)} {self.pixels_rgba.dtype}"
            )
        self.cam2world = self.cam2world.to(torch.float64)
        self.pix2cam = self.pix2cam.to(torch.float64)
        self.focal = self.focal.to(torch.float64)
        self.lossmult = self.lossmult.to(torch.float32)
        # direction(col, row) = ray_matrix @ (col + 0.5, row + 0.5, 1): core.rays' pinhole rule,
        # evaluated per pixel in numpy by _rays (core.rays.pinhole_rays makes a whole image).
        ray_matrix = self.cam2world[:, :3, :3] @ self.pix2cam
        # numpy views of the per-image tables for the per-step lookups (see _rays).
        self._ray_matrix_np = ray_matrix.numpy()
        self._origins_np = self.cam2world[:, :3, 3].numpy()
        self._radii_np = pinhole_radius(ray_matrix).numpy()
        self._lossmult_np = self.lossmult.numpy()
        self._offsets_np = self.offsets.numpy()
        self._widths_np = np.array(self.widths, dtype=np.int64)
        self._pixels_np = self.pixels_rgba.numpy()

    @property
    def num_pixels(self) -> int:
        """Total pixel count over all images (= number of rays)."""
        return int(self.offsets[-1])

    @property
    def num_images(self) -> int:
        return len(self.names)

    def pixel_rays(self, flat_index: torch.Tensor) -> tuple[RayBundle, torch.Tensor]:
        """Rays and target colours of any pixels of any images.

        flat_index: (B,) integer tensor of flat pixel indices in [0, num_pixels).
        Returns a RayBundle of B float32 rays and the (B, 3) float32 colours (CPU tensors).
        """
        index = flat_index.reshape(-1).to(device="cpu", dtype=torch.int64).numpy()
        if index.size and (index.min() < 0 or index.max() >= self.num_pixels):
            raise IndexError(f"pixel index out of range [0, {self.num_pixels})")
        image = np.searchsorted(self._offsets_np, index, side="right") - 1
        local = index - self._offsets_np[image]
        width = self._widths_np[image]
        row = local // width
        col = local - row * width
        return self._rays(image, col, row), self._colours(index)

    def image_rays(self, i: int) -> tuple[RayBundle, torch.Tensor]:
        """All H*W rays of image ``i`` in row-major order, and its (H, W, 3) float32 colours."""
        height, width = self.heights[i], self.widths[i]
        local = np.arange(height * width, dtype=np.int64)
        row = local // width
        col = local - row * width
        colours = self._colours(local + self._offsets_np[i]).view(height, width, 3)
        return self._rays(np.array([i]), col, row), colours

    def _rays(self, image: np.ndarray, col: np.ndarray, row: np.ndarray) -> RayBundle:
        """Rays for pixels (col, row) of images ``image`` ((B,), or (1,) for one image).

        The lookups run in numpy: torch hands even a 4096-element gather or searchsorted to
        its intra-op thread pool, which took 2-20 ms instead of ~0.1 ms on a busy 2-core
        machine (the trainer calls this every step)."""
        count = col.shape[0]
        matrix = self._ray_matrix_np[image]  # (B, 3, 3) or (1, 3, 3)
        x = (col + 0.5)[:, None]
        y = (row + 0.5)[:, None]
        directions = matrix[..., 0] * x + matrix[..., 1] * y + matrix[..., 2]
        viewdirs = directions / np.sqrt((directions**2).sum(axis=-1, keepdims=True))
        per_image = np.stack([self._radii_np[image], self._lossmult_np[image]], axis=-1).astype(np.float32)
        per_image = np.broadcast_to(per_image, (count, 2))
        return RayBundle(
            origins=torch.from_numpy(np.broadcast_to(self._origins_np[image], (count, 3)).astype(np.float32)),
            directions=torch.from_numpy(directions.astype(np.float32)),
            viewdirs=torch.from_numpy(viewdirs.astype(np.float32)),
            radii=torch.from_numpy(per_image[:, 0:1].copy()),
            near=torch.full((count, 1), float(self.near), dtype=torch.float32),
            far=torch.full((count, 1), float(self.far), dtype=torch.float32),
            lossmult=torch.from_numpy(per_image[:, 1:2].copy()),
        )

    def _colours(self, index: np.ndarray) -> torch.Tensor:
        """(B, 3) float32 colours of flat pixels ``index``, composited as the reference does
        (float32 ``rgb * a + (1 - a)``) when ``white_bkgd``."""
        rgba = self._pixels_np[index].astype(np.float32) / 255.0
        rgb = rgba[:, :3]
        if self.white_bkgd:
            alpha = rgba[:, 3:]
            rgb = rgb * alpha + (1.0 - alpha)
        return torch.from_numpy(np.ascontiguousarray(rgb))

    @classmethod
    def from_cameras(cls, cameras, pixels: np.ndarray | torch.Tensor, white_bkgd: bool, **extra):
        """The ImageSet of `cameras` (a ``data.cameras.SplitCameras``) with their decoded
        `pixels` ((sum H*W, 4) uint8, image after image); `extra`: a subclass's own fields."""
        pixels = torch.as_tensor(pixels)
        offsets = np.concatenate([[0], np.cumsum([h * w for h, w in cameras.sizes])])
        images = [pixels[offsets[i] : offsets[i + 1]].view(h, w, 4) for i, (h, w) in enumerate(cameras.sizes)]
        return cls(images=images, white_bkgd=white_bkgd, pixels_rgba=pixels, **cameras.image_fields(), **extra)

    def __repr__(self) -> str:
        levels = sorted(set(self.levels))
        return (
            f"ImageSet({self.num_images} images, {self.num_pixels} pixels, levels {levels}, "
            f"multiscale={self.multiscale}, white_bkgd={self.white_bkgd})"
        )
