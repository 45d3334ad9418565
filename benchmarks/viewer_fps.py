"""How fast `mipnerf view` shows an image on this machine: BENCHMARKS.md's "Viewer" section.

    python benchmarks/viewer_fps.py fps [--configs demo lego-cpu fast] [--runs RUN ...] [--threads 1 2] [--rounds 3]
    python benchmarks/viewer_fps.py startup RUN [--screenshot docs/viewer.png]

`fps` times the viewer's own ProgressiveRenderer (the coarse image, then the refined one, at
the default --max-size 256 of a 4:3 browser: 64x48 then 256x192 pixels) for models of a
config's size with random weights (speed does not depend on the weights: every sample of
every ray is evaluated; for the grid model of `fast` the untrained occupancy grid is all
occupied, its slowest case), and with --runs the trained models of runs (a grid-model run's
trained occupancy grid skips empty space). `startup` starts the real `mipnerf view RUN` command, opens the
page in headless Chromium as soon as the port listens, and reports when the server sent
the first (coarse) and the first refined image; with --screenshot it saves the page once
the refined image is shown.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Run inside `mipnerf view`'s process: the real command, with the time of each image sent.
HOOK = """
import sys, time, json
from mipnerf_cli import cli
from mipnerf_cli.viewer import server as viewer
shown = viewer.Viewer._show
def _show(self, client, frame):
    shown(self, client, frame)
    print(json.dumps({"frame": time.time(), "final": frame.final, "size": [frame.width, frame.height]}), flush=True)
viewer.Viewer._show = _show
sys.argv = ["mipnerf", "view", *sys.argv[1:]]
cli.main()
"""


def fps(args) -> None:
    import numpy as np
    import torch

    from mipnerf_cli.core import models
    from mipnerf_cli.core.camera_paths import look_at_origin
    from mipnerf_cli.runs.trained import load_trained_model
    from mipnerf_cli.runtime import resolve
    from mipnerf_cli.settings import resolve_train_settings
    from mipnerf_cli.viewer.cameras import ViewCamera, coarse_factor, plan_resolutions
    from mipnerf_cli.viewer.render import COARSE_SECONDS, ProgressiveRenderer

    view = ViewCamera(
        look_at_origin(torch.tensor([2.4, -2.4, 2.0], dtype=torch.float64)).numpy(), np.radians(50.0), 4 / 3
    )
    (cw, ch), (fw, fh) = plan_resolutions(args.resolution, view.aspect)
    print(f"# {os.uname().nodename}, load average {os.getloadavg()}, torch {torch.__version__}")

    def config_model(name: str):
        family, config = resolve_train_settings(name, {"data": ROOT}).model_family_config()
        return models.build(family, dataclasses.asdict(config), torch.Generator().manual_seed(0)).eval()

    chosen = [(name, lambda name=name: config_model(name)) for name in args.configs]
    chosen += [(f"{run.name} (run)", lambda run=run: load_trained_model(run, None, torch.device("cpu")).model.eval())
               for run in args.runs]  # fmt: skip
    for name, make in chosen:
        model = make()
        for threads in args.threads:
            runtime = resolve("cpu", threads)
            renderer = ProgressiveRenderer(model, True, 2.0, 6.0, runtime=runtime)
            renderer.render(view, cw, ch)  # warm-up
            times = {"coarse": [], "refined": []}
            for _ in range(args.rounds):
                for key, (w, h) in (("coarse", (cw, ch)), ("refined", (fw, fh))):
                    start = time.perf_counter()
                    renderer.render(view, w, h)
                    times[key].append(time.perf_counter() - start)
            row = {key: statistics.median(values) for key, values in times.items()}
            # The coarse image RenderQueue picks once it has measured the refined one's speed.
            shrink = coarse_factor(fw * fh, fw * fh / row["refined"], COARSE_SECONDS)
            aw, ah = plan_resolutions(args.resolution, view.aspect, shrink)[0]
            adaptive = []
            for _ in range(args.rounds):
                start = time.perf_counter()
                renderer.render(view, aw, ah)
                adaptive.append(time.perf_counter() - start)
            adaptive_s = statistics.median(adaptive)
            print(
                f"| {name} | {threads} | {cw}x{ch}: {row['coarse']:.3f} s = {1 / row['coarse']:.1f} fps "
                f"| {aw}x{ah}: {adaptive_s:.3f} s = {1 / adaptive_s:.1f} fps "
                f"| {fw}x{fh}: {row['refined']:.2f} s = {1 / row['refined']:.2f} fps "
                f"| {os.getloadavg()[0]:.1f} |",
                flush=True,
            )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def startup(args) -> None:
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=args.chromium, args=["--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
        )
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.route("**/*", lambda route: route.continue_() if "127.0.0.1" in route.request.url else route.abort())
        started = time.time()
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                HOOK,
                str(args.run),
                "--port",
                str(port),
                "--device",
                "cpu",
                "--cpu-threads",
                str(args.cpu_threads),
                "--max-size",
                str(args.resolution),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        try:
            while True:
                with socket.socket() as probe:
                    if probe.connect_ex(("127.0.0.1", port)) == 0:
                        break
                if process.poll() is not None:
                    raise SystemExit(process.stdout.read())
                time.sleep(0.05)
            listening = time.time()
            page.goto(f"http://127.0.0.1:{port}")
            loaded = time.time()
            first = refined = None
            for line in process.stdout:
                if not line.startswith("{"):
                    continue
                event = json.loads(line)
                first = first or event["frame"]
                if event["final"]:
                    refined = event["frame"]
                    break
            print(
                f"command start -> listening: {listening - started:.1f} s; page load: {loaded - listening:.1f} s; "
                f"start -> first (coarse) image: {first - started:.1f} s; -> refined image: {refined - started:.1f} s "
                f"(page open -> first image {first - listening:.1f} s); load average {os.getloadavg()}"
            )
            if args.screenshot:
                # Orbit away from the first training camera (same distance to the scene), so its
                # frustum shows beside the scene, and wait for the refined image of the new view.
                page.mouse.move(640, 400)
                page.mouse.down()
                page.mouse.move(640 + args.drag, 400, steps=10)
                page.mouse.up()
                time.sleep(0.5)
                for line in process.stdout:
                    if line.startswith("{") and json.loads(line)["final"]:
                        break
                time.sleep(1.0)
                close = page.locator(".mantine-Notification-closeButton")
                if close.count():
                    close.first.click()
                time.sleep(0.5)
                page.screenshot(path=str(args.screenshot))
                print(f"wrote {args.screenshot}")
        finally:
            process.terminate()
            process.wait(timeout=20)
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    timing = sub.add_parser("fps")
    timing.add_argument("--configs", nargs="*", default=["demo", "lego-cpu"])
    timing.add_argument("--runs", nargs="*", type=Path, default=[], help="trained runs (Blender bounds 2-6)")
    timing.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    timing.add_argument("--rounds", type=int, default=3)
    timing.add_argument("--resolution", type=int, default=256)
    start = sub.add_parser("startup")
    start.add_argument("run", type=Path)
    start.add_argument("--screenshot", type=Path)
    start.add_argument("--drag", type=int, default=-120, help="horizontal mouse drag (pixels) before the screenshot")
    start.add_argument("--cpu-threads", type=int, default=1)
    start.add_argument("--resolution", type=int, default=256)
    start.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    fps(args) if args.what == "fps" else startup(args)


if __name__ == "__main__":
    main()
