"""The web app's routers: sign-in, pages, calibration, outbox, practice and the JSON API."""
