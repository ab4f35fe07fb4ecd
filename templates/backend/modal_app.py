"""Deploy this backend to Modal: `modal deploy modal_app.py` (from this directory).

Serves the same ASGI app as local development (app.main:app). SQLite lives on a Modal Volume
mounted at /data so items survive restarts. Tests never import this file (see pytest.ini), so
`modal` is not in requirements.txt; the deploy step installs it.
"""

import os

import modal

APP_NAME = os.environ.get("MODAL_APP_NAME", "open-replit-app")

image = (
    modal.Image.debian_slim(python_version="3.11")
    .pip_install_from_requirements("requirements.txt")
    .env({"DATABASE_PATH": "/data/app.db"})
    .add_local_python_source("app")
)

volume = modal.Volume.from_name(f"{APP_NAME}-data", create_if_missing=True)

app = modal.App(APP_NAME)


@app.function(image=image, volumes={"/data": volume})
@modal.concurrent(max_inputs=100)
@modal.asgi_app()
def fastapi_app():
    from app.main import app as web_app

    return web_app
