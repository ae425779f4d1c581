"""The web app: dashboard, rep progress, interactions, calibration, outbox and practice pages,
and a JSON API, as a thin edge over the coaching core. Only `app.py` imports it."""

from web.factory import create_app
from web.practice_service import DriverFactory, PracticeService

__all__ = ["DriverFactory", "PracticeService", "create_app"]
