"""Calls and transcripts into the database: files in many formats, idempotently.

`ingest_paths` reads files and folders; `save_calls` stores already parsed calls (the demo
data and practice sessions use it too). See README "Ingesting calls" for the formats.
"""

from ingest.calls import ParsedCall, ParsedTurn, content_hash
from ingest.errors import IngestError, MappingError
from ingest.mapping import ExportMapping, load_mapping
from ingest.pipeline import IngestReport, Rejection, ingest_paths
from ingest.save import CallOutcome, SaveResult, save_calls
from ingest.speakers import SpeakerResolver

__all__ = [
    "CallOutcome",
    "ExportMapping",
    "IngestError",
    "IngestReport",
    "MappingError",
    "ParsedCall",
    "ParsedTurn",
    "Rejection",
    "SaveResult",
    "SpeakerResolver",
    "content_hash",
    "ingest_paths",
    "load_mapping",
    "save_calls",
]
