"""Image quality metrics of the mip-NeRF paper: PSNR and SSIM, in pure torch; and the
8-bit images nerfbaselines' protocol scores them on (`truncated_to_uint8`).

Both follow google/mipnerf (`internal/math.py`): PSNR assumes a peak value of 1, and SSIM
is the tf.image.ssim formulation with a separable 11x11 Gaussian (sigma 1.5), 'valid'
filtering (no padding) and the mean over all pixels and channels. The arithmetic runs in
float64 so the value does not depend on the device or the input precision.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def truncated_to_uint8(image: torch.Tensor) -> torch.Tensor:
    """The image nerfbaselines' protocol scores: 8-bit levels truncated, not rounded.

    image: (..., H, W, C) float32 values (a prediction, or a target composited on its
    background). Returns float32 of the same shape: ``trunc(clip(image * 255, 0, 255)) / 255``,
    nerfbaselines' ``convert_image_dtype`` to uint8 and back (its ``image_to_srgb``)."""
    levels = (image.to(torch.float32) * 255.0).clamp(0.0, 255.0).to(torch.uint8)
    return levels.to(torch.float32) / 255.0


def mse(img0: torch.Tensor, img1: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all elements.

    img0, img1: (..., H, W, C) images with values in [0, 1].
    Returns a float64 scalar tensor.
    """
    if img0.shape != img1.shape:
        raise ValueError(f"image shapes differ: {tuple(img0.shape)} vs {tuple(img1.shape)}")
    diff = img0.to(torch.float64) - img1.to(torch.float64)
    return (diff * diff).mean()


def psnr(img0: torch.Tensor, img1: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB for a peak value of 1: -10 log10(mse).

    img0, img1: (..., H, W, C) images with values in [0, 1]. Identical images give inf.
    """
    error = float(mse(img0, img1))
    if error == 0.0:
        return math.inf
    return -10.0 * math.log10(error)


def gaussian_filter_1d(filter_size: int, filter_sigma: float, dtype=torch.float64, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian taps, shape (filter_size,).

    For an even size the taps are centred between the two middle samples, as the
    reference's `shift` term does.
    """
    half = filter_size // 2
    shift = (2 * half - filter_size + 1) / 2
    offsets = (torch.arange(filter_size, dtype=dtype, device=device) - half + shift) / filter_sigma
    taps = torch.exp(-0.5 * offsets**2)
    return taps / taps.sum()


def _blur_valid(planes: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' Gaussian blur of (B, 1, H, W) -> (B, 1, H-k+1, W-k+1).

    The taps are symmetric, so correlation (what conv2d computes) equals convolution.
    """
    size = taps.shape[0]
    planes = F.conv2d(planes, taps.view(1, 1, size, 1))
    return F.conv2d(planes, taps.view(1, 1, 1, size))


def ssim(
    img0: torch.Tensor,
    img1: torch.Tensor,
    max_val: float = 1.0,
    filter_size: int = 11,
    filter_sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> float:
    """Mean structural similarity of two images (google/mipnerf `compute_ssim`).

    img0, img1: (H, W, C) images (a leading batch shape is allowed and averaged over too).
    Both H and W must be at least `filter_size`, because 'valid' filtering leaves no pixel
    otherwise (ValueError). Returns the mean SSIM over pixels and channels as a float.
    """
    if img0.shape != img1.shape:
        raise ValueError(f"image shapes differ: {tuple(img0.shape)} vs {tuple(img1.shape)}")
    if img0.dim() < 3:
        raise ValueError(f"expected (..., H, W, C) images, got shape {tuple(img0.shape)}")
    height, width = img0.shape[-3], img0.shape[-2]
    if height < filter_size or width < filter_size:
        raise ValueError(f"SSIM needs images of at least {filter_size}x{filter_size} pixels, got {height}x{width}")

    def as_planes(image: torch.Tensor) -> torch.Tensor:
        # (..., H, W, C) -> (B*C, 1, H, W): every channel filtered on its own.
        image = image.to(torch.float64).reshape(-1, height, width, image.shape[-1])
        return image.permute(0, 3, 1, 2).reshape(-1, 1, height, width)

    x, y = as_planes(img0), as_planes(img1)
    taps = gaussian_filter_1d(filter_size, filter_sigma, device=x.device)
    mu_x, mu_y = _blur_valid(x, taps), _blur_valid(y, taps)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    var_x = (_blur_valid(x * x, taps) - mu_xx).clamp_min(0.0)
    var_y = (_blur_valid(y * y, taps) - mu_yy).clamp_min(0.0)
    cov_xy = _blur_valid(x * y, taps) - mu_xy
    # Cauchy-Schwarz bound: rounding can push |cov| above sqrt(var_x var_y).
    cov_xy = torch.sign(cov_xy) * torch.minimum(torch.sqrt(var_x * var_y), cov_xy.abs())

    c1 = (k1 * max_val) ** 2
    c2 = (k2 * max_val) ** 2
    numerator = (2 * mu_xy + c1) * (2 * cov_xy + c2)
    denominator = (mu_xx + mu_yy + c1) * (var_x + var_y + c2)
    return float((numerator / denominator).mean())
