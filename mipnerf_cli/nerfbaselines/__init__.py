"""mip-NeRF as a nerfbaselines method (the optional ``nerfbaselines`` extra).

spec.py     what nerfbaselines discovers through the ``nerfbaselines.specs`` entry point: the
            method ``mipnerf`` (presets, the paper's numbers) and the multiscale Blender loader
cameras.py  nerfbaselines cameras and datasets -> this project's ImageSet and rays (the one
            place that knows nerfbaselines' conventions)
method.py   the Method class: the project's own model, training step and checkpoints
datasets.py the multiscale Blender loader (scenes made by ``mipnerf convert``)

Only these modules import ``nerfbaselines``; nothing else in the package imports them, so
the tool works without the extra.
"""
