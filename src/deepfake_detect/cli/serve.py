"""``serve``: the HTTP API and web page (``deepfake_detect.service``) under uvicorn.

The CLI and the service are independent top layers (SPEC §3), so the command does not import the service:
it hands the model and settings to ``service.app:app_from_env`` through environment variables and lets
uvicorn import the app by name, the same way ``uvicorn --factory`` would.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from deepfake_detect.cli.app import app
from deepfake_detect.cli.common import QuietOption, VerboseOption, console, fail, setup_logging

APP_FACTORY = "deepfake_detect.service.app:app_from_env"
MODEL_ENV = "DEEPFAKE_DETECT_MODEL"  # read by service.app.app_from_env
SETTINGS_ENV = "DEEPFAKE_DETECT_SERVICE_SETTINGS"


def _model_dir(model: Path | None) -> Path:
    if model is None:
        from deepfake_detect.inference.last_model import last_model_path

        found = last_model_path()
        if found is None:
            fail("no model given: pass --model DIR (a trained model) or run `deepfake-detect demo` first")
        model = found
    from deepfake_detect.models.io import ModelDirError, read_model_config

    try:
        read_model_config(model)  # a clear message now rather than a worker's traceback later
    except ModelDirError as exc:
        fail(str(exc))
    return model.resolve()


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8000,
    model: Annotated[
        Path | None, typer.Option("--model", "-m", help="Model folder; default: the one `demo` trained last.")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (each loads the model once).")] = 1,
    max_upload_mb: Annotated[
        float, typer.Option(min=0.001, help="Largest upload in MB (413 past it).")
    ] = 200.0,
    max_duration_s: Annotated[float, typer.Option(min=0.001, help="Longest video in seconds (422).")] = 600.0,
    queue_size: Annotated[int, typer.Option(min=0, help="Requests waiting beyond busy workers (503).")] = 8,
    timeout: Annotated[float, typer.Option(min=0.001, help="Seconds to analyse one upload (504).")] = 300.0,
    threads: Annotated[
        int | None, typer.Option(min=1, help="Torch threads per worker (default: CPU cores // workers).")
    ] = None,
    engine: Annotated[str, typer.Option(help="Inference engine: torch or onnx.")] = "torch",
    verbose: VerboseOption = 0,
    quiet: QuietOption = False,
) -> None:
    """Serve the HTTP API (POST /v1/detect, GET /v1/health, GET /v1/model, /docs) and the web page at /."""
    setup_logging(verbose, quiet)
    model_dir = _model_dir(model)
    settings = {
        "workers": workers,
        "max_upload_mb": max_upload_mb,
        "max_duration_s": max_duration_s,
        "queue_size": queue_size,
        "request_timeout_s": timeout,
        "engine": engine,
        "worker_threads": threads,
    }
    os.environ[MODEL_ENV] = str(model_dir)
    os.environ[SETTINGS_ENV] = json.dumps(settings)
    import uvicorn

    console.print(f"serving {model_dir} at http://{host}:{port}/ (Ctrl-C to stop)", highlight=False)
    uvicorn.run(
        APP_FACTORY, factory=True, host=host, port=port, log_config=None, timeout_graceful_shutdown=10
    )
