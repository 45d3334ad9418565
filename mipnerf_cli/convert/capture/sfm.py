"""Camera poses of a set of photos with pycolmap: COLMAP's SIFT features, matching (all pairs
for photos, neighbouring frames for a video), incremental mapping and undistortion to a
pinhole camera, all on the CPU, in a scratch folder.

Every pycolmap call runs in a worker thread with a cancellation token, so that Ctrl+C stops
it within a moment instead of after the stage (the C++ code does not look at Python's
signals); the interrupt is then raised again in the calling thread.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path
from typing import Any, Callable

from mipnerf_cli.convert.capture.sources import MIN_IMAGES, Photos
from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.reporting import Reporter
from mipnerf_cli.settings import CAMERA_MODELS, SfmOptions

SEQUENTIAL_OVERLAP = 10  # a video frame is matched with the next 10 (and 2^k further ones)
MAX_EXHAUSTIVE = 300  # above this many photos, exhaustive matching takes hours on a CPU


def import_pycolmap():
    """pycolmap, or one line saying how to install it."""
    try:
        import pycolmap
    except ImportError:
        raise MipNerfError(
            'converting photos or a video needs pycolmap: pip install -e ".[capture]" (or pip install "pycolmap>=4.2,<5")'
        ) from None
    return pycolmap


@dataclasses.dataclass
class SfmResult:
    """The undistorted reconstruction: ``reconstruction`` (pycolmap.Reconstruction, PINHOLE
    cameras), ``image_dir`` holding its undistorted images by name, the names registered
    (sorted) and those left out."""

    reconstruction: Any
    image_dir: Path
    model_dir: Path
    registered: list[str]
    unregistered: list[str]


def check_options(options: SfmOptions) -> None:
    if options.camera_model not in CAMERA_MODELS:
        raise MipNerfError(f"--camera-model must be one of {', '.join(CAMERA_MODELS)}, got {options.camera_model!r}")
    if options.threads is not None and options.threads < 1:
        raise MipNerfError(f"--threads must be at least 1, got {options.threads}")


def _threads(options: SfmOptions) -> int:
    return options.threads or max(1, os.cpu_count() or 1)


def run_cancellable(call: Callable[[Any], Any], pycolmap) -> Any:
    """``call(token)`` in a worker thread; Ctrl+C in the calling thread cancels the token,
    waits for the worker to stop and raises KeyboardInterrupt."""
    token = pycolmap.CancellationToken()
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["result"] = call(token)
        except BaseException as error:  # handed to the calling thread
            outcome["error"] = error

    worker = threading.Thread(target=work, name="pycolmap", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.1)
    except KeyboardInterrupt:
        token.cancel()
        worker.join()
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")


def _quiet_logging(pycolmap) -> None:
    """COLMAP's own log lines (thousands per run, and "errors" such as "Failed to create any
    sparse model" that this module turns into one message of its own) off the terminal."""
    pycolmap.logging.minloglevel = 3
    pycolmap.logging.logtostderr = True
    pycolmap.logging.stderrthreshold = 3


def extract(pycolmap, database: Path, image_dir: Path, names: list[str], options: SfmOptions, reporter: Reporter):
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = options.camera_model
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.num_threads = _threads(options)
    extraction.use_gpu = False
    mode = pycolmap.CameraMode.PER_IMAGE if options.per_image_cameras else pycolmap.CameraMode.SINGLE
    with reporter.progress("features (SIFT)", total=len(names), unit="images") as bar:
        run_cancellable(
            lambda token: pycolmap.extract_features(
                database,
                image_dir,
                image_names=names,
                camera_mode=mode,
                reader_options=reader,
                extraction_options=extraction,
                device=pycolmap.Device.cpu,
                cancellation_token=token,
            ),
            pycolmap,
        )
        bar.update(len(names))
        with pycolmap.Database.open(database) as db:
            bar.log(f"features: {db.num_keypoints()} keypoints in {db.num_images()} images")


def match(pycolmap, database: Path, count: int, sequential: bool, options: SfmOptions, reporter: Reporter) -> int:
    """Match features; returns the number of geometrically verified image pairs."""
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = _threads(options)
    matching.use_gpu = False
    pairs = count * (count - 1) // 2 if not sequential else count * SEQUENTIAL_OVERLAP
    what = "sequential" if sequential else "exhaustive"
    with reporter.progress(f"matching ({what})", total=1, unit="stage") as bar:
        if sequential:
            pairing = pycolmap.SequentialPairingOptions()
            pairing.overlap = SEQUENTIAL_OVERLAP
            pairing.loop_detection = False  # needs a vocabulary tree download
            pairing.num_threads = _threads(options)
            call = lambda token: pycolmap.match_sequential(
                database,
                matching_options=matching,
                pairing_options=pairing,
                device=pycolmap.Device.cpu,
                cancellation_token=token,
            )
        else:
            call = lambda token: pycolmap.match_exhaustive(
                database, matching_options=matching, device=pycolmap.Device.cpu, cancellation_token=token
            )
        run_cancellable(call, pycolmap)
        bar.update(1)
        with pycolmap.Database.open(database) as db:
            verified = db.num_verified_image_pairs()
        bar.log(f"matching: {verified} verified image pairs of about {pairs} tried")
    return verified


def map_images(pycolmap, database: Path, image_dir: Path, work: Path, count: int, options: SfmOptions, reporter):
    """Incremental mapping; returns the reconstruction with the most registered images (or None)."""
    pipeline = pycolmap.IncrementalPipelineOptions()
    pipeline.num_threads = _threads(options)
    pipeline.min_model_size = MIN_IMAGES
    pipeline.random_seed = 0
    output = work / "sparse"
    output.mkdir()
    with reporter.progress("mapping", total=count, unit="images") as bar:
        models = run_cancellable(
            lambda token: pycolmap.incremental_mapping(
                database,
                image_dir,
                output,
                pipeline,
                initial_image_pair_callback=lambda: bar.update(2),
                next_image_callback=lambda: bar.update(1),
                cancellation_token=token,
            ),
            pycolmap,
        )
        best = max(models.values(), key=lambda model: model.num_reg_images()) if models else None
        bar.log(f"mapping: {0 if best is None else best.num_reg_images()} of {count} images registered")
    if not models:
        return None
    return max(models.values(), key=lambda model: model.num_reg_images())


def undistort(pycolmap, model, image_dir: Path, work: Path, options: SfmOptions, reporter: Reporter):
    """Undistort the registered images to PINHOLE cameras; returns (reconstruction, image folder, model folder)."""
    model_dir = work / "model"
    model_dir.mkdir()
    model.write(model_dir)
    out = work / "undistorted"
    camera = pycolmap.UndistortCameraOptions()
    # Keep the original image size: one size for every image, also with per-image cameras.
    camera.min_scale = camera.max_scale = 1.0
    names = sorted(image.name for image in model.images.values())
    with reporter.progress("undistort", total=len(names), unit="images") as bar:
        run_cancellable(
            lambda token: pycolmap.undistort_images(
                out,
                model_dir,
                image_dir,
                image_names=names,
                undistort_options=camera,
                num_threads=_threads(options),
                cancellation_token=token,
            ),
            pycolmap,
        )
        bar.update(len(names))
    return pycolmap.Reconstruction(out / "sparse"), out / "images", out / "sparse"


def too_few_registered(registered: int, total: int) -> MipNerfError:
    return MipNerfError(
        f"only {registered} of {total} images could be placed by structure from motion (at least {MIN_IMAGES} needed); "
        "take more photos with more overlap (each spot seen from several nearby angles), with texture and no motion blur"
    )


def run_sfm(photos: Photos, work: Path, options: SfmOptions, reporter: Reporter) -> SfmResult:
    """Poses of ``photos`` (all in one folder) by pycolmap, in the scratch folder ``work``.

    MipNerfError when fewer than MIN_IMAGES images register; images left out are listed in
    the result, never an error."""
    check_options(options)
    pycolmap = import_pycolmap()
    _quiet_logging(pycolmap)
    image_dir = photos.photos[0].path.parent
    names = [photo.path.name for photo in photos.photos]
    database = work / "database.db"
    sequential = options.sequential if options.sequential is not None else photos.kind == "video"
    if not sequential and len(names) > MAX_EXHAUSTIVE:
        reporter.warning(
            f"{len(names)} photos: matching all pairs will take long; a video source matches neighbours only"
        )
    extract(pycolmap, database, image_dir, names, options, reporter)
    verified = match(pycolmap, database, len(names), sequential, options, reporter)
    if verified == 0:
        raise MipNerfError(
            f"{image_dir}: no two of the {len(names)} images share enough features to be matched; "
            "photograph one textured subject or scene with plenty of overlap between neighbouring shots"
        )
    model = map_images(pycolmap, database, image_dir, work, len(names), options, reporter)
    if model is None or model.num_reg_images() < MIN_IMAGES:
        raise too_few_registered(0 if model is None else model.num_reg_images(), len(names))
    reconstruction, undistorted, model_dir = undistort(pycolmap, model, image_dir, work, options, reporter)
    registered = sorted(image.name for image in reconstruction.images.values())
    unregistered = sorted(set(names) - set(registered))
    return SfmResult(reconstruction, undistorted, model_dir, registered, unregistered)
