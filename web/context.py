"""What every request handler needs: the database, settings, rubrics, rules and templates,
plus the errors that become error pages (or JSON under `/api`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime

from fastapi.templating import Jinja2Templates
from sqlalchemy.engine import Engine
from starlette.requests import Request

from coaching.catalogue import ScenarioCatalogue
from coaching.graph import CoachingPipeline, open_pipeline
from coaching.rubrics import RubricCache
from config.coaching import CoachingRules
from config.rubric import RubricLibrary
from config.settings import Settings
from web.practice_service import PracticeService


class WebError(Exception):
    """An error the person sees: a status and a message that says what to do."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(WebError):
    status_code = 400


class NotSignedIn(WebError):
    status_code = 401


class Forbidden(WebError):
    status_code = 403


class NotFound(WebError):
    status_code = 404


class Conflict(WebError):
    status_code = 409


class Unavailable(WebError):
    status_code = 503


@dataclass
class WebContext:
    engine: Engine
    settings: Settings
    rubrics: RubricLibrary
    rules: CoachingRules
    catalogue: ScenarioCatalogue
    clock: Callable[[], datetime]
    templates: Jinja2Templates
    rubric_cache: RubricCache
    practice: PracticeService | None = None

    def now(self) -> datetime:
        return self.clock()

    def today(self) -> date:
        return self.clock().date()

    @contextmanager
    def pipeline(self) -> Iterator[CoachingPipeline]:
        """The coaching pipeline, for answers that resume it (cohort approvals)."""
        with open_pipeline(
            self.engine,
            self.settings.data_dir,
            rules=self.rules,
            catalogue=self.catalogue,
            clock=self.clock,
        ) as pipeline:
            yield pipeline


def web_context(request: Request) -> WebContext:
    context = request.app.state.web
    assert isinstance(context, WebContext)
    return context
