"""PSNR and SSIM against google/mipnerf's values (golden ssim.npz), scikit-image and hand cases."""

import math

import numpy as np
import pytest
import torch
from golden import load_golden
from skimage.metrics import structural_similarity

from mipnerf_cli.core.metrics import gaussian_filter_1d, psnr, ssim, truncated_to_uint8

GOLDEN = load_golden("ssim")
PAIRS = range(6)


@pytest.mark.parametrize("i", PAIRS)
def test_ssim_matches_reference(i):
    img0, img1 = torch.from_numpy(GOLDEN[f"img0_{i}"]), torch.from_numpy(GOLDEN[f"img1_{i}"])
    assert ssim(img0, img1) == pytest.approx(float(GOLDEN[f"ssim_{i}"]), abs=1e-5)


@pytest.mark.parametrize("i", PAIRS)
def test_psnr_matches_reference(i):
    img0, img1 = torch.from_numpy(GOLDEN[f"img0_{i}"]), torch.from_numpy(GOLDEN[f"img1_{i}"])
    expected = float(GOLDEN[f"psnr_{i}"])
    if math.isinf(expected):
        assert psnr(img0, img1) == math.inf
    else:
        assert psnr(img0, img1) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("shape", [(40, 56, 3), (23, 31, 1)])
def test_ssim_matches_skimage_on_random_images(shape):
    rng = np.random.default_rng(7)
    img0 = rng.random(shape).astype(np.float32)
    # Correlated second image so SSIM is far from both 0 and 1.
    img1 = np.clip(0.7 * img0 + 0.3 * rng.random(shape), 0, 1).astype(np.float32)
    expected = structural_similarity(
        img0,
        img1,
        channel_axis=-1,
        data_range=1.0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        win_size=11,
    )
    value = ssim(torch.from_numpy(img0), torch.from_numpy(img1))
    assert 0.2 < value < 0.9
    assert value == pytest.approx(expected, abs=1e-5)


def test_identical_images():
    image = torch.rand(32, 32, 3, generator=torch.Generator().manual_seed(0))
    assert ssim(image, image) == pytest.approx(1.0, abs=1e-12)
    assert psnr(image, image) == math.inf


@pytest.mark.parametrize("sigma", [0.01, 0.05, 0.2])
def test_psnr_of_known_noise(sigma):
    generator = torch.Generator().manual_seed(1)
    image = torch.full((256, 256, 3), 0.5)
    noisy = image + sigma * torch.randn(image.shape, generator=generator)
    # E[(noise)^2] = sigma^2, so PSNR ~ -20 log10(sigma); 196k samples keep the error tiny.
    assert psnr(image, noisy) == pytest.approx(-20 * math.log10(sigma), abs=0.02)


def test_psnr_hand_value():
    # Every pixel off by 0.1 -> mse 0.01 -> exactly 20 dB.
    zeros = torch.zeros(4, 5, 3)
    assert psnr(zeros, zeros + 0.1) == pytest.approx(20.0, abs=1e-5)


def test_ssim_of_constant_images_is_luminance_term():
    # Flat images have no variance, so SSIM reduces to (2ab + c1) / (a^2 + b^2 + c1).
    a, b, c1 = 0.2, 0.6, 0.01**2
    value = ssim(torch.full((16, 16, 3), a, dtype=torch.float64), torch.full((16, 16, 3), b, dtype=torch.float64))
    assert value == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-9)


def test_ssim_is_symmetric_and_bounded():
    generator = torch.Generator().manual_seed(2)
    img0, img1 = torch.rand(20, 24, 3, generator=generator), torch.rand(20, 24, 3, generator=generator)
    assert ssim(img0, img1) == pytest.approx(ssim(img1, img0), abs=1e-12)
    assert -1.0 <= ssim(img0, 1 - img0) < 0.0


def test_gaussian_taps():
    taps = gaussian_filter_1d(11, 1.5)
    assert taps.shape == (11,)
    assert float(taps.sum()) == pytest.approx(1.0)
    assert torch.argmax(taps) == 5
    assert float(taps[4] / taps[5]) == pytest.approx(math.exp(-0.5 / 1.5**2))
    assert torch.allclose(taps, taps.flip(0))


def test_ssim_rejects_images_smaller_than_the_window():
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.zeros(8, 8, 3), torch.zeros(8, 8, 3))
    with pytest.raises(ValueError, match="shapes differ"):
        ssim(torch.zeros(12, 12, 3), torch.zeros(12, 13, 3))


def test_truncated_to_uint8_is_nerfbaselines_8_bit_conversion():
    """nerfbaselines' convert_image_dtype: (x * 255).clip(0, 255).astype(uint8), i.e. truncation."""
    image = torch.tensor([[[0.0, 0.5, 0.999, 1.0, 1.2, -0.1, 0.1 / 255, 254.9 / 255]]], dtype=torch.float32)
    levels = truncated_to_uint8(image) * 255.0
    assert levels.dtype == torch.float32
    assert levels.round().tolist() == [[[0.0, 127.0, 254.0, 255.0, 255.0, 0.0, 0.0, 254.0]]]
    torch.testing.assert_close(levels, levels.round(), rtol=0, atol=1e-4)
