"""The coaching engine: per-interaction pipeline, triggers, gaps, assignment and the outbox.

Free of Slack, LiveKit and web imports; the bot and the web app call these functions.
"""

from coaching.assignment import assign_practice, choose_scenario, complete_assignment
from coaching.catalogue import ScenarioCatalogue, ScenarioSummary, StaticCatalogue, load_catalogue
from coaching.context import CoachingContext
from coaching.disputes import open_dispute, resolve_dispute
from coaching.errors import (
    ApprovalError,
    CatalogueError,
    CoachingError,
    OutcomeImportError,
    TeamNotFoundError,
)
from coaching.feedback import render_text
from coaching.graph import (
    CoachingPipeline,
    PipelineReport,
    RunResult,
    build_graph,
    open_checkpointer,
    open_pipeline,
    pending_interactions,
    resume_expired_approvals,
    run_pipeline,
)
from coaching.notes import add_note, score_note
from coaching.outbox import (
    build_digests,
    claim,
    feedback_breaches,
    list_messages,
    mark_failed,
    mark_sent,
    reschedule,
    set_alert_mode,
    undelivered,
)
from coaching.outcomes import import_outcomes
from coaching.reports import Period, parse_period, rep_progress, report, team_gaps, team_trend

__all__ = [
    "ApprovalError",
    "CatalogueError",
    "CoachingContext",
    "CoachingError",
    "CoachingPipeline",
    "OutcomeImportError",
    "Period",
    "PipelineReport",
    "RunResult",
    "ScenarioCatalogue",
    "ScenarioSummary",
    "StaticCatalogue",
    "TeamNotFoundError",
    "add_note",
    "assign_practice",
    "build_digests",
    "build_graph",
    "choose_scenario",
    "claim",
    "complete_assignment",
    "feedback_breaches",
    "import_outcomes",
    "list_messages",
    "load_catalogue",
    "mark_failed",
    "mark_sent",
    "open_checkpointer",
    "open_dispute",
    "open_pipeline",
    "parse_period",
    "pending_interactions",
    "render_text",
    "rep_progress",
    "report",
    "reschedule",
    "resolve_dispute",
    "resume_expired_approvals",
    "run_pipeline",
    "score_note",
    "set_alert_mode",
    "team_gaps",
    "team_trend",
    "undelivered",
]
