"""The viewer's renders: a view coarse first then full size, cancellable between chunks, on
one worker thread per browser where the latest camera wins."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any, Callable

import numpy as np
import torch

from mipnerf_cli.runtime import Runtime
from mipnerf_cli.viewer.cameras import ViewCamera, coarse_factor, plan_resolutions

OUTPUTS = ("rgb", "depth", "acc")
COARSE_SECONDS = 0.25  # how long the coarse image of a moving camera should take to render


class Cancelled(Exception):
    """The render was superseded by a newer camera."""


@dataclasses.dataclass
class Frame:
    """One image to show: uint8 (H, W, 3), its size, whether it is the final one, and how long
    its render took (None for the partial images of a render in progress)."""

    image: np.ndarray
    width: int
    height: int
    final: bool
    seconds: float | None = None


def frame_time_text(frame: Frame) -> str | None:
    """The viewer's "Frame time" line for a finished image, e.g. "256x192: 0.42 s (2.4 fps)";
    None for a partial image (it keeps the line as it was)."""
    if frame.seconds is None:
        return None
    seconds = max(frame.seconds, 1e-6)
    return f"{frame.width}x{frame.height}: {seconds:.2f} s ({1 / seconds:.1f} fps)"


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
    """The width*height rays (row-major) of `view`: ``data.formats.llff.pose_rays``, in NDC when
    the scene says so (`ndc`), exactly as `mipnerf render` builds a path frame's rays."""
    from mipnerf_cli.data.formats.llff import pose_rays

    return pose_rays(torch.from_numpy(view.cam2world), width, height, view.focal(height), near, far, ndc)


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
            self.show(Frame(image, width, height, final=final, seconds=seconds))
            if final:
                self.completed += 1
