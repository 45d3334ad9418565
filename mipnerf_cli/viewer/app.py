"""`mipnerf view`: an interactive browser viewer of a trained (or still training) run, on viser.

The pieces that need no browser are plain functions and small classes, tested on their own:
camera conversions between viser (OpenCV axes) and the datasets' cam2world (OpenGL axes),
the coarse/refine resolution plan, progressive cancellable rendering through
:func:`mipnerf_cli.core.render.render_rays`, a read-only checkpoint watcher, and the
nerfstudio ``camera_path.json`` writer. :class:`Viewer` wires them to a viser server.
"""

from __future__ import annotations

import dataclasses
import json
import math
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.runtime import Runtime

OUTPUTS = ("rgb", "depth", "acc")
COARSE_SECONDS = 0.25  # how long the coarse image of a moving camera should take to render
_OPENGL_FROM_OPENCV = np.diag([1.0, -1.0, -1.0])  # flips y and z: camera looks down -z, y up


# ---------------------------------------------------------------- cameras


def quaternion_to_matrix(wxyz: np.ndarray) -> np.ndarray:
    """(4,) unit quaternion w, x, y, z -> (3, 3) rotation matrix."""
    w, x, y, z = np.asarray(wxyz, dtype=np.float64) / np.linalg.norm(wxyz)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quaternion(rotation: np.ndarray) -> np.ndarray:
    """(3, 3) rotation matrix -> (4,) unit quaternion w, x, y, z (w >= 0)."""
    m = np.asarray(rotation, dtype=np.float64)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * math.sqrt(trace + 1.0)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = 2.0 * math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    q = np.array(q)
    return q if q[0] >= 0 else -q


@dataclasses.dataclass(frozen=True)
class ViewCamera:
    """A browser camera in the datasets' convention.

    cam2world: (3, 4) float64, OpenGL axes (x right, y up, looking down -z), like transforms.json.
    fov: vertical field of view in radians; aspect: width / height.
    """

    cam2world: np.ndarray
    fov: float
    aspect: float

    def focal(self, height: int) -> float:
        """Focal length in pixels of this camera rendered `height` pixels high."""
        return 0.5 * height / math.tan(0.5 * self.fov)


def camera_from_viser(wxyz, position, fov: float, aspect: float) -> ViewCamera:
    """A viser camera (OpenCV axes: x right, y down, looking down +z) as a ViewCamera."""
    rotation = quaternion_to_matrix(np.asarray(wxyz)) @ _OPENGL_FROM_OPENCV
    cam2world = np.concatenate([rotation, np.asarray(position, dtype=np.float64).reshape(3, 1)], axis=1)
    return ViewCamera(cam2world=cam2world, fov=float(fov), aspect=float(aspect))


def viser_pose(cam2world) -> tuple[np.ndarray, np.ndarray]:
    """(wxyz, position) in viser's OpenCV axes of a (3, 4) or (4, 4) OpenGL cam2world."""
    c2w = np.asarray(cam2world, dtype=np.float64)
    return matrix_to_quaternion(c2w[:3, :3] @ _OPENGL_FROM_OPENCV), c2w[:3, 3].copy()


def plan_resolutions(max_size: int, aspect: float, coarse_factor: int = 4) -> list[tuple[int, int]]:
    """[(width, height), ...]: the coarse image first, then the full one (longer side = max_size).

    The coarse image is `coarse_factor` times smaller (at least 8 pixels on its shorter side
    unless the full one is smaller); when that is no smaller, the plan is the full image alone.
    """
    if max_size < 1 or aspect <= 0:
        raise ValueError(f"bad resolution {max_size} or aspect {aspect}")
    if aspect >= 1:
        full = (max_size, max(1, round(max_size / aspect)))
    else:
        full = (max(1, round(max_size * aspect)), max_size)
    shrink = max(1, coarse_factor)
    short = min(full)
    shrink = min(shrink, max(1, short // 8))
    coarse = (max(1, full[0] // shrink), max(1, full[1] // shrink))
    return [full] if coarse == full else [coarse, full]


def coarse_factor(full_pixels: int, rays_per_second: float | None, budget_s: float, minimum: int = 4) -> int:
    """How many times smaller (per side) the coarse image is than the refined one: `minimum`,
    or more when this machine's measured speed would take longer than `budget_s` for it."""
    if not rays_per_second or rays_per_second <= 0:
        return minimum
    return max(minimum, math.ceil(math.sqrt(full_pixels / (rays_per_second * budget_s))))


def nearest_training_view(position: np.ndarray, cam2world: np.ndarray) -> int:
    """Index of the training camera (cam2world (I, 3, 4)) whose centre is nearest to `position`."""
    return int(np.argmin(np.linalg.norm(cam2world[:, :3, 3] - np.asarray(position)[None], axis=1)))


def matching_level(view: ViewCamera, height: int, train_position: np.ndarray, train_focals: dict[int, float]) -> int:
    """The multiscale level whose pixel footprint at the scene centre is nearest to this view's.

    A pixel covers distance/focal at distance `distance` from the camera; this view's and each
    level's (at the nearest training camera's distance) are compared on a log scale.
    """
    mine = np.linalg.norm(view.cam2world[:3, 3]) / view.focal(height)
    theirs = {level: np.linalg.norm(train_position) / focal for level, focal in train_focals.items()}
    return min(theirs, key=lambda level: abs(math.log(theirs[level] / mine)))


# ---------------------------------------------------------------- rendering


class Cancelled(Exception):
    """The render was superseded by a newer camera."""


@dataclasses.dataclass
class Frame:
    """One image to show: uint8 (H, W, 3), its size, and whether it is the final one."""

    image: np.ndarray
    width: int
    height: int
    final: bool


def colorize(output: str, result: dict[str, torch.Tensor], near: float, far: float) -> np.ndarray:
    """uint8 (H, W, 3) of `output` ("rgb", "depth" or "acc") from render_image's result."""
    from mipnerf_cli.io.images import colorize_acc, colorize_depth, depth_range, to_uint8

    if output == "rgb":
        return to_uint8(result["rgb"])
    if output == "depth":
        lo, hi = depth_range(result["distance"], result["acc"], fallback=(near, far))
        return colorize_depth(result["distance"], result["acc"], lo, max(hi, lo + 1e-6))
    if output == "acc":
        return colorize_acc(result["acc"])
    raise ValueError(f"unknown output {output!r}; expected one of {', '.join(OUTPUTS)}")


def view_rays(view: ViewCamera, width: int, height: int, near: float, far: float, ndc: bool):
    """The width*height rays (row-major) of `view`; in NDC for a forward-facing LLFF model,
    exactly as `mipnerf render` builds a path frame's rays."""
    from mipnerf_cli.core.rays import pinhole_rays
    from mipnerf_cli.data.formats.llff import pose_rays

    pose = torch.from_numpy(view.cam2world)
    if ndc:
        return pose_rays(pose, width, height, view.focal(height), near, far, True)
    return pinhole_rays(pose.float(), width, height, view.focal(height), near, far)


class ProgressiveRenderer:
    """Renders a ViewCamera coarse first, then full size chunk by chunk, cancellable between chunks.

    Every ray goes through core.render.render_rays (the CPU fast path or the device), so the
    viewer shows what `mipnerf render` would. `footprint` scales the cone radii: 2 renders the
    view as a camera with half the resolution sees it (mip-NeRF's anti-aliasing made visible).
    `ndc`: the model is a forward-facing LLFF one and sees its rays in NDC (as in training).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        white_bkgd: bool,
        near: float,
        far: float,
        runtime: Runtime | None = None,
        chunk: int = 4096,
        ndc: bool = False,
    ) -> None:
        self.model, self.white_bkgd, self.near, self.far, self.ndc = model, white_bkgd, near, far, ndc
        self.runtime = runtime or Runtime(device=torch.device("cpu"))
        self.chunk = chunk
        self.lock = threading.Lock()  # guards self.model against a checkpoint swap mid-render

    def set_model(self, model: torch.nn.Module) -> None:
        with self.lock:
            self.model = model

    def render(
        self,
        view: ViewCamera,
        width: int,
        height: int,
        output: str = "rgb",
        footprint: float = 1.0,
        is_cancelled: Callable[[], bool] = lambda: False,
        on_partial: Callable[[np.ndarray], None] | None = None,
    ) -> np.ndarray:
        """uint8 (height, width, 3); raises Cancelled when `is_cancelled()` turns true between chunks.

        on_partial (optional) gets the image so far (rows not yet rendered are black) after each chunk.
        """
        from mipnerf_cli.core.render import render_rays

        rays = view_rays(view, width, height, self.near, self.far, self.ndc)
        rays = dataclasses.replace(rays, radii=rays.radii * float(footprint))
        count = width * height
        parts: dict[str, list[torch.Tensor]] = {"rgb": [], "distance": [], "acc": []}
        with self.lock:
            for start in range(0, count, self.chunk):
                if is_cancelled():
                    raise Cancelled()
                out = render_rays(
                    self.model,
                    rays[start : start + self.chunk],
                    self.chunk,
                    self.white_bkgd,
                    **self.runtime.render_options(self.model),
                )
                for key in parts:
                    parts[key].append(out[key])
                if on_partial is not None and start + self.chunk < count:
                    on_partial(self._image(parts, count, width, height, output))
        return self._image(parts, count, width, height, output)

    def _image(self, parts, count, width, height, output) -> np.ndarray:
        done = {key: torch.cat(values) for key, values in parts.items()}
        missing = count - len(done["acc"])
        if missing:
            done = {key: torch.cat([value, torch.zeros((missing, *value.shape[1:]))]) for key, value in done.items()}
        result = {
            "rgb": done["rgb"].view(height, width, 3),
            "distance": done["distance"].view(height, width),
            "acc": done["acc"].view(height, width),
        }
        return colorize(output, result, self.near, self.far)


class RenderQueue:
    """Latest-camera-wins rendering on one worker thread.

    submit() replaces whatever is pending and cancels the render in progress; the worker
    renders the plan of each request (coarse, then full) and hands every Frame to `show`.
    The coarse image is sized from the speed of the renders so far to take about
    `coarse_seconds` (at least 4 times smaller per side than the full one).
    """

    def __init__(
        self, renderer: ProgressiveRenderer, show: Callable[[Frame], None], coarse_seconds: float = COARSE_SECONDS
    ) -> None:
        self.renderer, self.show = renderer, show
        self.coarse_seconds = coarse_seconds
        self.rays_per_second: float | None = None  # measured on the last completed image
        self._condition = threading.Condition()
        self._request: dict[str, Any] | None = None
        self._generation = 0
        self._stopped = False
        self.completed = 0  # final frames shown (for tests and the status line)
        self.last_seconds: dict[str, float] = {}
        self._thread = threading.Thread(target=self._work, name="mipnerf-view-render", daemon=True)
        self._thread.start()

    def submit(
        self, view: ViewCamera, max_size: int, output: str = "rgb", footprint: float = 1.0, refine: bool = True
    ) -> int:
        with self._condition:
            self._generation += 1
            self._request = {
                "view": view,
                "max_size": max_size,
                "output": output,
                "footprint": footprint,
                "refine": refine,
                "generation": self._generation,
            }
            self._condition.notify()
            return self._generation

    def stop(self) -> None:
        with self._condition:
            self._stopped = True
            self._generation += 1
            self._condition.notify()
        self._thread.join(timeout=10)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """True once no request is pending or in progress (for tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._condition:
                if self._request is None and not self._busy:
                    return True
            time.sleep(0.01)
        return False

    _busy = False

    def _work(self) -> None:
        while True:
            with self._condition:
                while self._request is None and not self._stopped:
                    self._condition.wait()
                if self._stopped:
                    return
                request, self._request = self._request, None
                self._busy = True
            try:
                self._render(request)
            except Cancelled:
                pass
            finally:
                self._busy = False

    def _render(self, request: dict[str, Any]) -> None:
        generation = request["generation"]

        def cancelled() -> bool:
            return self._generation != generation

        view = request["view"]
        full = plan_resolutions(request["max_size"], view.aspect)[-1]
        shrink = coarse_factor(full[0] * full[1], self.rays_per_second, self.coarse_seconds)
        plan = plan_resolutions(request["max_size"], view.aspect, shrink)
        if not request["refine"]:
            plan = plan[:1]
        for index, (width, height) in enumerate(plan):
            final = index == len(plan) - 1
            started = time.perf_counter()
            partial = None
            if final and index > 0:

                def partial(image, width=width, height=height):
                    if not cancelled():
                        self.show(Frame(image, width, height, final=False))

            image = self.renderer.render(
                view, width, height, request["output"], request["footprint"], is_cancelled=cancelled, on_partial=partial
            )
            if cancelled():
                raise Cancelled()
            seconds = time.perf_counter() - started
            self.last_seconds["coarse" if index == 0 and len(plan) > 1 else "full"] = seconds
            self.rays_per_second = width * height / max(seconds, 1e-6)
            self.show(Frame(image, width, height, final=final))
            if final:
                self.completed += 1


# ---------------------------------------------------------------- live training


class CheckpointWatcher:
    """Finds a newer good checkpoint in a run folder, read-only (no lock, nothing written).

    poll() returns (model, step, path) when a checkpoint with a new step has appeared, else None.
    A damaged or half-written file is skipped (the previous model stays).
    """

    def __init__(self, run_dir: Path, step: int, device: torch.device) -> None:
        self.folder = Path(run_dir) / "ckpt"
        self.step = step
        self.device = device
        self._seen: tuple | None = self._signature()

    def _signature(self) -> tuple | None:
        if not self.folder.is_dir():
            return None
        entries = []
        for entry in sorted(self.folder.glob("*.pt")):
            try:
                stat = entry.stat()
            except OSError:
                continue
            entries.append((entry.name, stat.st_mtime_ns, stat.st_size))
        return tuple(entries)

    def poll(self):
        from mipnerf_cli.runs.checkpoints import load_newest_good
        from mipnerf_cli.runs.payload import model_from_checkpoint

        signature = self._signature()
        if signature == self._seen:
            return None
        self._seen = signature
        try:
            found = load_newest_good(self.folder, report=lambda message: None)
        except MipNerfError:
            return None
        if found is None or int(found[0].get("step", -1)) == self.step:
            return None
        payload, path = found
        try:
            model, _ = model_from_checkpoint(payload, source=path)
        except (MipNerfError, RuntimeError, KeyError, TypeError, ValueError):
            return None
        self.step = int(payload["step"])
        return model.to(self.device).eval(), self.step, path


# ---------------------------------------------------------------- keyframes


def camera_path_json(keyframes: list[ViewCamera], width: int, height: int, fps: float, seconds: float) -> dict:
    """nerfstudio's camera_path.json for `keyframes` (one entry each, in order).

    Each entry: camera_to_world (the flattened 4x4, OpenGL axes), fov (vertical, degrees),
    aspect. The reader decides how to interpolate between them.
    """
    if not keyframes:
        raise MipNerfError("no keyframes to export; add the current view as a keyframe first")
    if width < 1 or height < 1 or fps <= 0 or seconds <= 0:
        raise MipNerfError(f"bad camera path settings: {width}x{height}, {fps} fps, {seconds} s")
    path = []
    for key in keyframes:
        matrix = np.eye(4)
        matrix[:3, :] = key.cam2world
        path.append(
            {
                "camera_to_world": [float(v) for v in matrix.reshape(-1)],
                "fov": math.degrees(key.fov),
                "aspect": float(key.aspect),
            }
        )
    return {
        "camera_type": "perspective",
        "render_height": int(height),
        "render_width": int(width),
        "fps": float(fps),
        "seconds": float(seconds),
        "camera_path": path,
    }


def write_camera_path(path: Path, document: dict) -> None:
    """Write `document` as JSON atomically (`io.files`)."""
    from mipnerf_cli.io.files import write_text_atomically

    write_text_atomically(Path(path), json.dumps(document, indent=2), durable=True)


# ---------------------------------------------------------------- the server


def check_port_free(host: str, port: int) -> None:
    """MipNerfError when `port` on `host` cannot be bound (viser would silently pick another)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            raise MipNerfError(
                f"port {port} on {host} is in use or not allowed ({error.strerror}); pass --port N"
            ) from None


@dataclasses.dataclass
class TrainingViews:
    """The training cameras: cam2world (I, 3, 4), focal per image, sizes, levels, thumbnails."""

    cam2world: np.ndarray
    focal: np.ndarray
    widths: list[int]
    heights: list[int]
    levels: list[int]
    thumbnails: list[np.ndarray]
    near: float
    far: float
    multiscale: bool
    ndc: bool = False  # a forward-facing LLFF scene: the model sees NDC rays
    kind: str = "blender"

    def up_direction(self) -> np.ndarray:
        """The world's up for the orbit controls: +z for Blender scenes (their world is z-up);
        the training cameras' mean up for LLFF ones (recentred poses, about +y)."""
        if self.kind != "llff":
            return np.array([0.0, 0.0, 1.0])
        up = self.cam2world[:, :3, 1].mean(axis=0)
        return up / np.linalg.norm(up)


def load_training_views(trained, data: Path | None, thumbnail: int = 64) -> TrainingViews:
    """The train split's cameras (and small RGB thumbnails) of the run's scene.

    An LLFF scene is loaded with the run's own factor, spherify and llffhold (so its poses
    and focal are the ones it was trained on) and renders in NDC unless spherified.
    """
    from mipnerf_cli.data import llff_options, load_scene, scene_kind
    from mipnerf_cli.runs.trained import scene_folder, training_downscale

    folder = scene_folder(trained, data)
    kind = scene_kind(folder)
    options = llff_options(trained.settings) if kind == "llff" else {}
    images = load_scene(
        folder,
        "train",
        multiscale=(kind == "multiscale"),
        white_bkgd=trained.white_bkgd,
        downscale=training_downscale(trained, kind),
        **options,
    )
    thumbnails = []
    for image in images.images:
        rgba = image.float() / 255.0
        rgb = rgba[..., :3] * rgba[..., 3:] + (1.0 - rgba[..., 3:]) * (1.0 if images.white_bkgd else 0.0)
        step = max(1, image.shape[0] // thumbnail)
        thumbnails.append((rgb[::step, ::step] * 255).round().to(torch.uint8).numpy())
    return TrainingViews(
        cam2world=images.cam2world.to(torch.float64).numpy(),
        focal=images.focal.numpy(),
        widths=list(images.widths),
        heights=list(images.heights),
        levels=list(images.levels),
        thumbnails=thumbnails,
        near=float(images.near),
        far=float(images.far),
        multiscale=(kind == "multiscale"),
        ndc=bool(options) and not options["spherify"],
        kind=kind,
    )


class Viewer:
    """A viser server showing `trained` from each browser's camera.

    One RenderQueue per connected client; GUI: output, resolution, pixel footprint, keyframes,
    the training cameras as clickable frustums; a background thread reloads newer checkpoints.
    """

    def __init__(
        self,
        trained,
        views: TrainingViews,
        host: str = "127.0.0.1",
        port: int = 8080,
        max_size: int = 256,
        watch: bool = True,
        poll_seconds: float = 2.0,
        chunk: int = 4096,
        keyframes_out: Path | None = None,
        report: Callable[[str], None] = print,
        runtime: Runtime | None = None,
    ) -> None:
        import viser

        check_port_free(host, port)
        self.trained, self.views, self.report = trained, views, report
        self.runtime = runtime or Runtime(device=trained.device)
        self.keyframes: list[ViewCamera] = []
        self._keyframe_handles: list = []
        self.keyframes_out = keyframes_out or Path.cwd() / "camera_path.json"
        self.step = trained.step
        self.server = viser.ViserServer(host=host, port=port, verbose=False)
        self.host, self.port = host, self.server.get_port()
        self.server.scene.set_up_direction(tuple(views.up_direction()))
        self._start_at_training_view(0)
        self._renderers: dict[int, tuple[ProgressiveRenderer, RenderQueue]] = {}
        self._chunk = chunk
        self._build_gui(max_size)
        self._add_frustums()
        self.server.on_client_connect(self._connect)
        self.server.on_client_disconnect(self._disconnect)
        self._stop = threading.Event()
        self._watcher = CheckpointWatcher(trained.run_dir, trained.step, trained.device) if watch else None
        if self._watcher is not None:
            threading.Thread(target=self._watch, args=(poll_seconds,), daemon=True, name="mipnerf-view-watch").start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _build_gui(self, max_size: int) -> None:
        gui = self.server.gui
        self.step_text = gui.add_text("Checkpoint step", initial_value=str(self.step), disabled=True)
        self.output = gui.add_dropdown("Output", OUTPUTS, initial_value="rgb")
        self.resolution = gui.add_slider("Resolution", min=32, max=1024, step=16, initial_value=max_size)
        self.footprint = gui.add_slider(
            "Pixel footprint",
            min=0.25,
            max=8.0,
            step=0.25,
            initial_value=1.0,
            hint="Cone radius scale: 2 shows the view as a camera of half the resolution sees it",
        )
        self.nearest = gui.add_text("Nearest training view", initial_value="", disabled=True)
        self.show_cameras = gui.add_checkbox("Show training cameras", initial_value=True)
        self.show_cameras.on_update(lambda _event: self.set_cameras_visible(bool(self.show_cameras.value)))
        for handle in (self.output, self.resolution, self.footprint):
            handle.on_update(lambda _event: self._rerender_all())
        with gui.add_folder("Keyframes"):
            self.keyframe_count = gui.add_text("Keyframes", initial_value="0", disabled=True)
            self.seconds = gui.add_number("Seconds", initial_value=4.0, min=0.1, step=0.1)
            add = gui.add_button("Add current view")
            preview = gui.add_button("Preview path")
            export = gui.add_button("Export camera_path.json")
            clear = gui.add_button("Clear keyframes")
        add.on_click(self._add_keyframe)
        preview.on_click(self._preview)
        export.on_click(self._export)
        clear.on_click(self._clear_keyframes)

    def _add_frustums(self) -> None:
        views = self.views
        self._frustums = []
        for index in range(len(views.cam2world)):
            if views.levels[index] != 0:
                continue  # one frustum per pose: the multiscale copies share it
            wxyz, position = viser_pose(views.cam2world[index])
            fov = 2 * math.atan(0.5 * views.heights[index] / views.focal[index])
            frustum = self.server.scene.add_camera_frustum(
                f"/train/{index:04d}",
                fov=fov,
                aspect=views.widths[index] / views.heights[index],
                scale=0.25,
                image=views.thumbnails[index],
                wxyz=wxyz,
                position=position,
                color=(40, 90, 200),
            )
            self._frustums.append(frustum)
            frustum.on_click(lambda event, index=index: self._jump(event.client, index))

    def _start_at_training_view(self, index: int) -> None:
        """New browsers start at training camera `index` (its fov), orbiting a point ahead of it:
        the scene centre for Blender scenes, 2 units ahead (beyond the NDC near plane at
        distance 1) for LLFF ones, whose cameras sit near the origin looking along -z."""
        views = self.views
        c2w = views.cam2world[index]
        position, forward = c2w[:, 3], -c2w[:, 2] / np.linalg.norm(c2w[:, 2])
        distance = 2.0 if views.kind == "llff" else max(float(np.linalg.norm(position)), 1e-3)
        initial = self.server.initial_camera
        initial.position = tuple(position)
        initial.look_at = tuple(position + distance * forward)
        initial.up = tuple(views.up_direction())
        initial.fov = 2 * math.atan(0.5 * views.heights[index] / views.focal[index])

    def set_cameras_visible(self, visible: bool) -> None:
        for frustum in self._frustums:
            frustum.visible = visible

    def _jump(self, client, index: int) -> None:
        wxyz, position = viser_pose(self.views.cam2world[index])
        with client.atomic():
            client.camera.wxyz = wxyz
            client.camera.position = position

    def _connect(self, client) -> None:
        renderer = ProgressiveRenderer(
            self.trained.model,
            self.trained.white_bkgd,
            self.views.near,
            self.views.far,
            runtime=self.runtime,
            chunk=self._chunk,
            ndc=self.views.ndc,
        )
        queue = RenderQueue(renderer, lambda frame, client=client: self._show(client, frame))
        self._renderers[client.client_id] = (renderer, queue)
        client.camera.on_update(lambda camera, client=client: self._camera_moved(client))
        self._camera_moved(client)

    def _disconnect(self, client) -> None:
        entry = self._renderers.pop(client.client_id, None)
        if entry is not None:
            threading.Thread(target=entry[1].stop, daemon=True).start()

    def _view_of(self, client) -> ViewCamera:
        camera = client.camera
        return camera_from_viser(camera.wxyz, camera.position, camera.fov, camera.aspect)

    def _camera_moved(self, client) -> None:
        entry = self._renderers.get(client.client_id)
        if entry is None:
            return
        view = self._view_of(client)
        entry[1].submit(view, int(self.resolution.value), self.output.value, float(self.footprint.value))
        self._update_nearest(view)

    def _update_nearest(self, view: ViewCamera) -> None:
        views = self.views
        index = nearest_training_view(view.cam2world[:3, 3], views.cam2world)
        text = f"#{index}"
        if views.multiscale:
            same_pose = [
                i
                for i in range(len(views.levels))
                if np.allclose(views.cam2world[i], views.cam2world[index], atol=1e-6)
            ]
            focals = {views.levels[i]: float(views.focal[i]) for i in same_pose}
            height = plan_resolutions(int(self.resolution.value), view.aspect)[-1][1]
            level = matching_level(view, height, views.cam2world[index][:3, 3], focals)
            text += f", scale 1/{2**level} matches this view's pixel footprint"
        self.nearest.value = text

    def _rerender_all(self) -> None:
        for client in self.server.get_clients().values():
            self._camera_moved(client)

    def _show(self, client, frame: Frame) -> None:
        client.scene.set_background_image(frame.image, format="jpeg", jpeg_quality=90)

    def _add_keyframe(self, event) -> None:
        self.keyframes.append(self._view_of(event.client))
        self.keyframe_count.value = str(len(self.keyframes))
        wxyz, position = viser_pose(self.keyframes[-1].cam2world)
        self._keyframe_handles.append(
            self.server.scene.add_camera_frustum(
                f"/keyframes/{len(self.keyframes) - 1:03d}",
                fov=self.keyframes[-1].fov,
                aspect=self.keyframes[-1].aspect,
                scale=0.15,
                wxyz=wxyz,
                position=position,
                color=(220, 120, 20),
            )
        )

    def _clear_keyframes(self, _event) -> None:
        for handle in self._keyframe_handles:
            handle.remove()
        self._keyframe_handles.clear()
        self.keyframes.clear()
        self.keyframe_count.value = "0"

    def _preview(self, event) -> None:
        """Move the browser's camera through the keyframes (linear position, nearest rotation)."""
        client, keys = event.client, list(self.keyframes)
        if len(keys) < 2:
            client.add_notification("Preview", "add at least two keyframes", auto_close_seconds=3.0)
            return
        frames = max(2, int(float(self.seconds.value) * 10))
        for index in range(frames):
            t = index / (frames - 1) * (len(keys) - 1)
            low = min(int(t), len(keys) - 2)
            weight = t - low
            position = (1 - weight) * keys[low].cam2world[:3, 3] + weight * keys[low + 1].cam2world[:3, 3]
            rotation = keys[low if weight < 0.5 else low + 1].cam2world[:3, :3]
            wxyz, _ = viser_pose(np.concatenate([rotation, position[:, None]], axis=1))
            with client.atomic():
                client.camera.wxyz, client.camera.position = wxyz, position
            time.sleep(0.1)

    def _export(self, event) -> None:
        width, height = plan_resolutions(
            int(self.resolution.value), self.keyframes[0].aspect if self.keyframes else 1.0
        )[-1]
        try:
            document = camera_path_json(self.keyframes, width, height, fps=30.0, seconds=float(self.seconds.value))
            write_camera_path(self.keyframes_out, document)
        except MipNerfError as error:
            event.client.add_notification("Export failed", str(error), auto_close_seconds=5.0)
            return
        self.report(f"wrote {self.keyframes_out} ({len(self.keyframes)} keyframes)")
        event.client.add_notification("Exported", str(self.keyframes_out), auto_close_seconds=5.0)

    def _watch(self, poll_seconds: float) -> None:
        while not self._stop.wait(poll_seconds):
            found = self._watcher.poll()
            if found is None:
                continue
            model, step, path = found
            self.trained = dataclasses.replace(self.trained, model=model, step=step, checkpoint_path=path)
            self.step = step
            for renderer, _ in list(self._renderers.values()):
                renderer.set_model(model)
            self.step_text.value = str(step)
            self.report(f"loaded {path} (step {step})")
            self._rerender_all()

    def close(self) -> None:
        self._stop.set()
        for _, queue in list(self._renderers.values()):
            queue.stop()
        self.server.stop()


def open_viewer(
    run: Path | None,
    ckpt: Path | None,
    data: Path | None,
    host: str,
    port: int,
    max_size: int,
    device_name: str = "auto",
    cpu_threads: int | None = None,
    watch: bool = True,
    keyframes_out: Path | None = None,
    report: Callable[[str], None] = print,
) -> Viewer:
    """Load the run's model and training cameras and start the viewer (errors: MipNerfError)."""
    from mipnerf_cli.runs.trained import load_trained_model
    from mipnerf_cli.runtime import resolve

    check_port_free(host, port)
    runtime = resolve(device_name, cpu_threads)
    trained = load_trained_model(run, ckpt, runtime.device)
    views = load_training_views(trained, data)
    return Viewer(
        trained,
        views,
        host=host,
        port=port,
        max_size=max_size,
        watch=watch,
        keyframes_out=keyframes_out,
        report=report,
        runtime=runtime,
    )
