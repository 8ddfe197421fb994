"""HTTP API and web page for the detector (SPEC §1 ``serve``; layer 5: nothing imports this package)."""

from deepfake_detect.service.app import app_from_env, create_app
from deepfake_detect.service.settings import ServiceSettings

__all__ = ["ServiceSettings", "app_from_env", "create_app"]
