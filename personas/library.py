"""Load persona YAML files into validated `Persona` models, by slug."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import yaml
from pydantic import ValidationError

from config.company import CompanyError, CompanyProfile
from personas.schema import Difficulty, Persona

logger = logging.getLogger(__name__)

SHIPPED_PERSONA_DIR = Path(__file__).parent / "data"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class PersonaError(Exception):
    """A persona file that cannot be loaded; the message names the file and the field."""


class PersonaNotFoundError(PersonaError, LookupError):
    def __init__(self, slug: str, available: Iterable[str]) -> None:
        names = ", ".join(sorted(available)) or "none"
        super().__init__(f"No persona `{slug}`; available personas: {names}")
        self.slug = slug


def _format_validation_error(path: Path, exc: ValidationError) -> str:
    lines = [f"{path}: the persona is not valid:"]
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        lines.append(f"  - {where}: {error['msg']}")
    return "\n".join(lines)


def read_yaml(path: Path, what: str) -> object:
    """Read a YAML file; every failure is a message naming the file (raised as ValueError)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{path}: no such {what} file") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    try:
        return yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None


def parse_persona(data: object, *, source: Path, company: CompanyProfile) -> Persona:
    if not isinstance(data, dict):
        raise PersonaError(f"{source}: a persona file must hold a mapping with `slug` and `name`")
    try:
        rendered = company.render_tree(data)
    except CompanyError as exc:
        raise PersonaError(f"{source}: {exc}") from None
    try:
        return Persona.model_validate(rendered)
    except ValidationError as exc:
        raise PersonaError(_format_validation_error(source, exc)) from None


def load_persona(path: Path, company: CompanyProfile) -> Persona:
    try:
        data = read_yaml(path, "persona")
    except ValueError as exc:
        raise PersonaError(str(exc)) from None
    return parse_persona(data, source=path, company=company)


class PersonaLibrary:
    """The personas of one organisation, by slug."""

    def __init__(self, personas: Iterable[Persona], *, errors: Iterable[str] = ()) -> None:
        self._by_slug: dict[str, Persona] = {}
        self.errors: list[str] = list(errors)
        """Files that were set aside, each with the reason."""
        for persona in personas:
            if persona.slug in self._by_slug:
                raise PersonaError(f"Two personas share the slug `{persona.slug}`; rename one")
            self._by_slug[persona.slug] = persona

    @classmethod
    def from_dir(cls, company: CompanyProfile, directory: Path | None = None) -> PersonaLibrary:
        """Load every `*.yaml` persona in `directory` (default: the shipped personas).

        A file that does not load is set aside with its reason in `errors`; the rest load.
        """
        directory = directory or SHIPPED_PERSONA_DIR
        files = sorted(directory.glob("*.yaml"))
        if not files:
            raise PersonaError(f"{directory}: no persona files (*.yaml)")
        personas: list[Persona] = []
        errors: list[str] = []
        for path in files:
            try:
                personas.append(load_persona(path, company))
            except PersonaError as exc:
                logger.warning("persona set aside", extra={"path": str(path)})
                errors.append(str(exc))
        library = cls(personas, errors=errors)
        logger.debug("personas loaded", extra={"count": len(library), "dir": str(directory)})
        return library

    def __len__(self) -> int:
        return len(self._by_slug)

    def __contains__(self, slug: object) -> bool:
        return slug in self._by_slug

    @property
    def slugs(self) -> list[str]:
        return sorted(self._by_slug)

    def get(self, slug: str) -> Persona:
        try:
            return self._by_slug[slug]
        except KeyError:
            raise PersonaNotFoundError(slug, self._by_slug) from None

    def all(self) -> list[Persona]:
        return [self._by_slug[slug] for slug in self.slugs]

    def find(
        self, *, difficulty: Difficulty | None = None, kind: str | None = None
    ) -> list[Persona]:
        return [
            p
            for p in self.all()
            if (difficulty is None or p.difficulty == difficulty)
            and (kind is None or p.kind == kind)
        ]
