"""Photos or a video -> a trainable scene: frames, COLMAP poses (pycolmap), the scene folder.

``sources`` finds and checks the input (a folder of photos or a video file), ``sfm`` runs
pycolmap (SIFT, matching, incremental mapping, undistortion to pinhole), ``layout`` tells a
forward-facing capture from a 360° one and computes the per-image bounds, ``writer`` writes
the scene folder described in README's "Your own scenes", and ``pipeline`` runs them in
order. Nothing here imports rich or typer; progress goes through a
:class:`mipnerf_cli.reporting.Reporter`.
"""
