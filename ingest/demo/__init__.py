"""A demo organisation, Harbor Broadband, with a month of calls written in its own words."""

from ingest.demo._text import TemplateError
from ingest.demo.generator import DemoData, DemoOptions, generate_demo
from ingest.demo.load import (
    DemoError,
    DemoFiles,
    DemoReport,
    OrgSummary,
    TeamSummary,
    load_demo,
    resolve_end_date,
    run_demo,
    summarise_org,
    write_demo,
)
from ingest.demo.org import DemoOrg, DemoPerson, DemoTeam, Pattern

__all__ = [
    "DemoData",
    "DemoError",
    "DemoFiles",
    "DemoReport",
    "OrgSummary",
    "TeamSummary",
    "DemoOptions",
    "DemoOrg",
    "DemoPerson",
    "DemoTeam",
    "Pattern",
    "TemplateError",
    "generate_demo",
    "load_demo",
    "resolve_end_date",
    "run_demo",
    "summarise_org",
    "write_demo",
]
