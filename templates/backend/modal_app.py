"""Deploy this backend to Modal: `modal deploy modal_app.py` (from this directory).

Serves the same ASGI app as local development (app.main:app). SQLite lives on a Modal Volume
mounted at /data so items survive restarts. Tests never import this file (see pytest.ini), so
`modal` is not in requirements.txt; the deploy step installs it.
"""

import os

import modal

APP_NAME = os.environ.get("MODAL_APP_NAME", "open-replit-app")

# The browser calls this backend from the frontend's own host (VITE_API_URL), so CORS must
# allow it: the deploy passes that origin in CORS_ORIGINS ("*" when it is not known yet).
CORS_ORIGINS = os.environ.get("CORS_ORIGINS", "*")

image = (
    modal.Image.debian_slim(python_version="3.11")
    .pip_install_from_requirements("requirements.txt")
    .env({"DATABASE_PATH": "/data/app.db", "CORS_ORIGINS": CORS_ORIGINS})
    .add_local_python_source("app")
)

# The app's runtime secrets (environment variables the app reads), handed over by the deploy
# under the names listed in APP_SECRET_NAMES; they become a Modal secret of this app.
_secret_names = [n for n in os.environ.get("APP_SECRET_NAMES", "").split(",") if n]
secrets = (
    [modal.Secret.from_dict({n: os.environ[n] for n in _secret_names if n in os.environ})]
    if _secret_names
    else []
)

volume = modal.Volume.from_name(f"{APP_NAME}-data", create_if_missing=True)

app = modal.App(APP_NAME)


@app.function(image=image, volumes={"/data": volume}, secrets=secrets)
@modal.concurrent(max_inputs=100)
@modal.asgi_app()
def fastapi_app():
    from app.main import app as web_app

    return web_app
