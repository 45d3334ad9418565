"""`mipnerf view` in a real browser: headless Chromium driven by playwright, offline.

The viewer serves a tiny run on a free port of 127.0.0.1; the page may fetch nothing
else (every other request is aborted). Each check compares what the canvas shows with
a server-side render of the camera the browser reports, so a blank, stale or wrongly
oriented image fails. Skipped (with the reason) where playwright, viser or Chromium is
missing; `.ci/run` installs Debian's chromium, so CI runs it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from golden import REPO
from processes import MIPNERF, start, wait_until
from tiny_runs import make_run, one_cpu_thread  # noqa: F401

CHROMIUM = Path(os.environ.get("MIPNERF_CHROMIUM", "/usr/bin/chromium"))
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
pytest.importorskip("viser", reason="viser is not installed (pip install -e '.[view]')")
if not CHROMIUM.is_file():
    pytest.skip(
        f"no Chromium at {CHROMIUM} (apt-get install chromium, or set MIPNERF_CHROMIUM)", allow_module_level=True
    )

from mipnerf_cli.runs import checkpoints  # noqa: E402
from mipnerf_cli.viewer import cameras, render, server  # noqa: E402 (after the skips: viewer needs viser)

VIEWPORT = (800, 600)
RESOLUTION = 64  # the refined image: 64x48 for the 4:3 viewport
# Where the canvas is not covered by the GUI panel (right), the software-WebGL notice (top
# left) or the axes widget (bottom left): fractions of the width and height.
REGION = (slice(int(0.30 * 48), int(0.85 * 48)), slice(int(0.05 * 64), int(0.55 * 64)))
REGION_PIXELS = (
    slice(int(0.30 * VIEWPORT[1]), int(0.85 * VIEWPORT[1])),
    slice(int(0.05 * VIEWPORT[0]), int(0.55 * VIEWPORT[0])),
)
MATCH = 25.0  # mean abs error (0-255) between the canvas and the server's render: JPEG + scaling
WAIT_S = 15.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def patterned_run(tmp_path: Path, scale: float = 3.0) -> Path:
    """A tiny run whose weights are scaled up, so that its images have strong structure."""
    run = make_run(tmp_path, multiscale=False)
    rescale(run, scale, step=7)
    return run


def rescale(run: Path, scale: float, step: int) -> None:
    payload = checkpoints.load_checkpoint(run / "ckpt" / "step-0000007.pt")
    payload["model"] = {k: v * scale if v.is_floating_point() else v for k, v in payload["model"].items()}
    payload["step"] = step
    checkpoints.save_step(run / "ckpt", payload, keep=3)


class Page:
    """A Chromium page on the viewer that may reach nothing but the viewer's own address."""

    def __init__(self, browser, url: str) -> None:
        self.requests: list[str] = []
        self.blocked: list[str] = []
        self.page = browser.new_page(viewport={"width": VIEWPORT[0], "height": VIEWPORT[1]})
        self.page.route("**/*", self._route)
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.goto(url)

    def _route(self, route) -> None:
        url = route.request.url
        if url.startswith(("http://127.0.0.1:", "ws://127.0.0.1:")):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()

    def canvas(self) -> np.ndarray:
        """The viewport as uint8 (H, W, 3) RGB."""
        import cv2

        png = np.frombuffer(self.page.screenshot(), dtype=np.uint8)
        return cv2.imdecode(png, cv2.IMREAD_COLOR)[..., ::-1]


def client_view(server_viewer, timeout: float = WAIT_S) -> cameras.ViewCamera:
    """The camera of the one connected browser (waits for it to connect and report its camera)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        clients = list(server_viewer.server.get_clients().values())
        assert len(clients) <= 1
        if clients and client_id_renders(server_viewer, clients[0]):
            camera = clients[0].camera
            return cameras.camera_from_viser(camera.wxyz, camera.position, camera.fov, camera.aspect)
        time.sleep(0.05)
    raise AssertionError(f"no browser connected within {timeout} s")


def client_id_renders(server_viewer, client) -> bool:
    """Whether the viewer has set up rendering for `client` (which needs its camera)."""
    return client.client_id in server_viewer._renderers


def server_render(server_viewer, view: cameras.ViewCamera) -> np.ndarray:
    """What the canvas should show: the client's camera rendered here, at the refined size."""
    width, height = cameras.plan_resolutions(RESOLUTION, view.aspect)[-1]
    renderer = render.ProgressiveRenderer(
        server_viewer.trained.model, server_viewer.trained.white_bkgd, server_viewer.views.near, server_viewer.views.far
    )
    return renderer.render(view, width, height, server_viewer.output.value)


def shrink(canvas: np.ndarray, like: np.ndarray) -> np.ndarray:
    """The canvas averaged down to the render's size (viser stretches the image over the canvas)."""
    import cv2

    return cv2.resize(canvas, (like.shape[1], like.shape[0]), interpolation=cv2.INTER_AREA).astype(np.float64)


def error(canvas: np.ndarray, render: np.ndarray) -> float:
    return float(np.abs(shrink(canvas, render)[REGION] - render[REGION].astype(np.float64)).mean())


def wait_for_match(page: Page, server_viewer, timeout: float = WAIT_S):
    """(canvas, render, error) once the canvas shows the server's render of the client's camera."""
    deadline = time.monotonic() + timeout
    best = None
    while time.monotonic() < deadline:
        render = server_render(server_viewer, client_view(server_viewer))
        canvas = page.canvas()
        found = (canvas, render, error(canvas, render))
        if best is None or found[2] < best[2]:
            best = found
        if found[2] < MATCH:
            return found
        time.sleep(0.2)
    raise AssertionError(f"the canvas never matched the server's render within {timeout} s (best error {best[2]:.1f})")


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
        )
        yield chromium
        chromium.close()


def test_viewer_in_a_real_browser(tmp_path, browser):
    run = patterned_run(tmp_path)
    before = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
    served = server.open_viewer(
        run, None, None, "127.0.0.1", free_port(), RESOLUTION, "cpu", 1, True, None, report=lambda message: None
    )
    served.set_cameras_visible(False)  # frustums would cover the image being compared
    try:
        page = Page(browser, served.url)

        # 1. The first image: the canvas shows the scene from the browser's camera.
        _, first_render, _ = wait_for_match(page, served, timeout=WAIT_S)
        assert first_render[REGION].std() > 30  # a structured image, not a flat colour
        assert page.requests and all(
            url.startswith((served.url, served.url.replace("http", "ws"))) for url in page.requests
        ), page.requests
        assert page.blocked == []  # the client fetched nothing from the internet

        # 2. A mouse drag orbits the camera, and the canvas follows it.
        start_view = client_view(served)
        page.page.mouse.move(200, 400)
        page.page.mouse.down()
        page.page.mouse.move(320, 430, steps=10)
        page.page.mouse.up()
        deadline = time.monotonic() + WAIT_S
        while np.allclose(client_view(served).cam2world, start_view.cam2world) and time.monotonic() < deadline:
            time.sleep(0.05)
        moved = client_view(served)
        assert np.linalg.norm(moved.cam2world[:, 3] - start_view.cam2world[:, 3]) > 0.1
        moved_canvas, moved_render, _ = wait_for_match(page, served)
        assert error(moved_canvas, first_render) > 2 * MATCH  # a different image than before the drag

        # 3. Output "depth" in the dropdown: the canvas shows the depth map.
        page.page.get_by_role("combobox", name="Output").click()
        page.page.get_by_role("option", name="depth").click()
        deadline = time.monotonic() + WAIT_S
        while served.output.value != "depth" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert served.output.value == "depth"
        depth_canvas, depth_render, _ = wait_for_match(page, served)
        assert error(depth_canvas, moved_render) > 2 * MATCH

        # 4. A checkpoint written meanwhile (the run still training) is loaded; its step is shown.
        rescale(run, 0.7, step=11)
        page.page.wait_for_function(
            "() => [...document.querySelectorAll('input')].some(e => e.value === '11')", timeout=WAIT_S * 1000
        )
        assert served.step == 11
        new_canvas, _, _ = wait_for_match(page, served)
        assert error(new_canvas, depth_render) > MATCH / 2  # the new weights render differently
    finally:
        served.close()
    after = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
    assert [p for p in after if p not in before] == ["ckpt/step-0000011.pt"]  # the viewer wrote nothing


@pytest.mark.slow
def test_mipnerf_view_command_in_a_real_browser(tmp_path, browser):
    """The `mipnerf view` command itself, in its own process: the page loads and shows the scene."""
    run = patterned_run(tmp_path)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # A real process: the server must keep serving while this test drives the browser.
    process = start(
        *MIPNERF,
        "view",
        run,
        "--port",
        port,
        "--resolution",
        RESOLUTION,
        "--device",
        "cpu",
        "--cpu-threads",
        1,
        stderr=subprocess.STDOUT,
        env=env,
    )

    def serving() -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(serving, process, 60, f"the viewer to listen on port {port}", 0.2)
        page = Page(browser, url)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            canvas = page.canvas()[REGION_PIXELS]
            if canvas.std() > 30:  # the structured render, not viser's flat grey background
                break
            time.sleep(0.3)
        assert canvas.std() > 30
        assert page.blocked == []
    finally:
        process.terminate()
        process.wait(timeout=20)
