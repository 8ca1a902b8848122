"""The web layer: FastAPI app, WebSocket endpoints, HTTP API and the aether-bridge command."""

from .app import create_app
from .settings import Settings

__all__ = ["Settings", "create_app"]
