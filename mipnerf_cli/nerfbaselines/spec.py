"""What nerfbaselines discovers through the ``nerfbaselines.specs`` entry point (pyproject.toml):
the methods ``mipnerf`` (the paper model) and ``mipnerf-fast`` (the grid model, packaged
config ``fast``) and the dataset loader ``blender-multiscale``.

Importing this module registers them (``nerfbaselines.register``); nerfbaselines imports it
while it collects its registry. Presets name a packaged config (``mipnerf_cli/configs``) that
nerfbaselines applies when the dataset's id matches (``--presets`` picks one by hand).
"""

from __future__ import annotations

from nerfbaselines import register

# mip-NeRF (Barron et al., ICCV 2021), Table 2: single-scale Blender, per scene (supplement).
#   scenes: chair drums ficus hotdog lego materials mic ship      (mean)
#   PSNR:   35.14 25.48 33.29 37.48 35.70 30.71 36.51 30.41         33.09
#   SSIM:   0.981 0.932 0.980 0.982 0.978 0.959 0.991 0.882         0.961
#   LPIPS:  0.021 0.065 0.020 0.027 0.021 0.040 0.009 0.138         0.043
# Multiscale Blender (Table 1, means over the 8 scenes), full, 1/2, 1/4, 1/8 resolution:
#   PSNR 32.63 34.34 35.47 35.60, SSIM 0.958 0.970 0.979 0.983, LPIPS 0.047 0.026 0.017 0.012.
# The paper does not name LPIPS' backbone, so only PSNR and SSIM are compared (test-method --full).
_SCENES = ("chair", "drums", "ficus", "hotdog", "lego", "materials", "mic", "ship")
_PSNR = (35.14, 25.48, 33.29, 37.48, 35.70, 30.71, 36.51, 30.41)
_SSIM = (0.981, 0.932, 0.980, 0.982, 0.978, 0.959, 0.991, 0.882)
_LPIPS = (0.021, 0.065, 0.020, 0.027, 0.021, 0.040, 0.009, 0.138)
PAPER_RESULTS = {
    f"blender/{scene}": {"psnr": psnr, "ssim": ssim, "note": f"LPIPS {lpips} (backbone not named)"}
    for scene, psnr, ssim, lpips in zip(_SCENES, _PSNR, _SSIM, _LPIPS)
}

METHOD_SPEC = {
    "id": "mipnerf",
    "method_class": "mipnerf_cli.nerfbaselines.method:MipNerfMethod",
    "backends_order": ["python"],
    "metadata": {
        "name": "mip-NeRF",
        "description": (
            "mip-NeRF in PyTorch (the mipnerf-cli package): conical frustums with integrated positional "
            "encoding, one MLP sampled coarse then fine; the project's own training step and checkpoints."
        ),
        "paper_title": "Mip-NeRF: A Multiscale Representation for Anti-Aliasing Neural Radiance Fields",
        "paper_authors": [
            "Jonathan T. Barron",
            "Ben Mildenhall",
            "Matthew Tancik",
            "Peter Hedman",
            "Ricardo Martin-Brualla",
            "Pratul P. Srinivasan",
        ],
        "paper_link": "https://arxiv.org/abs/2103.13415",
        "link": "https://github.com/google/mipnerf",
        "paper_results": PAPER_RESULTS,
        "licenses": [{"name": "Apache 2.0", "url": "https://github.com/google/mipnerf/blob/main/LICENSE"}],
    },
    "presets": {
        "blender": {
            "@apply": [{"dataset": "blender"}],
            "@description": "google/mipnerf configs/blender.gin (packaged config lego)",
            "config": "lego",
        },
        "blender-multiscale": {
            "@apply": [{"dataset": "blender-multiscale"}],
            "@description": "google/mipnerf configs/multiblender.gin (packaged config lego-multiscale)",
            "config": "lego-multiscale",
        },
        "llff": {
            "@apply": [{"dataset": "llff"}],
            "@description": (
                "google/mipnerf configs/llff.gin model options: cylinders, density noise 1 (packaged config llff); "
                "the rays stay in world space, not the paper's NDC (docs/nerfbaselines.md)"
            ),
            "config": "llff",
        },
    },
    "implementation_status": {},
}

FAST_METHOD_SPEC = {
    "id": "mipnerf-fast",
    "method_class": "mipnerf_cli.nerfbaselines.method:MipNerfFastMethod",
    "backends_order": ["python"],
    "metadata": {
        "name": "mip-NeRF (fast grid model)",
        "description": (
            "This package's grid model (model_family trimip, packaged config fast): mip-mapped tri-planes "
            "picked by each sample's cone footprint, a small MLP and an occupancy grid; minutes on a CPU "
            "for Blender and multiscale Blender scenes. Not the paper's model: no published numbers."
        ),
        "licenses": [{"name": "Apache 2.0", "url": "https://github.com/google/mipnerf/blob/main/LICENSE"}],
    },
    # Without a preset (or a `config` override) the method uses the packaged config fast too.
    "presets": {
        "blender": {
            "@apply": [{"dataset": "blender"}],
            "@description": "packaged config fast (the grid model)",
            "config": "fast",
        },
        "blender-multiscale": {
            "@apply": [{"dataset": "blender-multiscale"}],
            "@description": "packaged config fast (the grid model) on the multiscale Blender scenes",
            "config": "fast",
            "multiscale": True,
        },
    },
    "implementation_status": {},
}

LOADER_SPEC = {
    "id": "blender-multiscale",
    "load_dataset_function": "mipnerf_cli.nerfbaselines.datasets:load_multiscale_blender",
}

register(METHOD_SPEC)
register(FAST_METHOD_SPEC)
register(LOADER_SPEC)
