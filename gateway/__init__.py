"""Network edge of the speech gateway: HTTPS page, WSS streaming protocol v1, text translation API."""

from .app import create_app
from .settings import Settings, load_settings

__all__ = ["Settings", "create_app", "load_settings"]
