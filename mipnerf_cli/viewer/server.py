"""`mipnerf view`: an interactive browser viewer of a trained (or still training) run, on viser.

:class:`Viewer` wires the browser-free parts (`viewer.cameras`, `viewer.render`,
`viewer.watch`) to a viser server; :func:`open_viewer` is what the command calls.
"""

from __future__ import annotations

import dataclasses
import errno
import math
import socket
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from mipnerf_cli.errors import MipNerfError
from mipnerf_cli.rendering.frames import write_camera_path
from mipnerf_cli.runtime import Runtime
from mipnerf_cli.viewer.cameras import (
    TrainingViews,
    ViewCamera,
    camera_from_viser,
    keyframe_frames,
    load_training_views,
    matching_level,
    nearest_training_view,
    plan_resolutions,
    viser_pose,
)
from mipnerf_cli.viewer.render import OUTPUTS, Frame, ProgressiveRenderer, RenderQueue, frame_time_text
from mipnerf_cli.viewer.watch import CheckpointWatcher

KEYFRAME_FPS = 30.0


def check_address(host: str, port: int) -> None:
    """MipNerfError in one line unless the viewer can listen on `host`:`port`: a port outside
    1..65535, a host that does not resolve or is not this machine's, a port in use or not
    allowed (viser would silently pick another port)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise MipNerfError(f"--port {port}: a port is a whole number from 1 to 65535; pass --port N")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (OSError, UnicodeError) as error:
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        raise MipNerfError(
            f"--host {host}: not a known host name or address ({reason}); pass --host 127.0.0.1 or an address "
            "of this machine"
        ) from None
    with socket.socket(family, kind, proto) as probe:
        try:
            probe.bind(address)
        except OSError as error:
            reason = error.strerror or str(error)
            if error.errno == errno.EADDRNOTAVAIL:
                raise MipNerfError(
                    f"--host {host}: not an address of this machine ({reason}); pass --host 127.0.0.1 or one of "
                    "this machine's addresses"
                ) from None
            if error.errno in (errno.EACCES, errno.EPERM):
                raise MipNerfError(
                    f"port {port} on {host} is not allowed ({reason}); pass --port N with N above 1023"
                ) from None
            raise MipNerfError(f"port {port} on {host} is in use or not allowed ({reason}); pass --port N") from None


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

        check_address(host, port)
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
        self.frame_time = gui.add_text("Frame time", initial_value="", disabled=True)
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
        text = frame_time_text(frame)
        if text is not None:
            self.frame_time.value = text

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
            frames = keyframe_frames(self.keyframes, width, height)
            write_camera_path(self.keyframes_out, frames, KEYFRAME_FPS, seconds=float(self.seconds.value))
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

    check_address(host, port)
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
