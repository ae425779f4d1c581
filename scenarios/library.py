"""Load scenario YAML into validated `Scenario` models; look them up and summarise them.

`ScenarioLibrary.scenarios()` returns summaries of the shape the coaching engine's
`ScenarioCatalogue` reads (slug, role, criteria, difficulty, title), so the library can be
handed to the assignment code as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from config.company import CompanyError, CompanyProfile
from personas import DIFFICULTIES, Difficulty, HeldBack, Persona, PersonaLibrary
from personas.library import read_yaml
from scenarios.schema import Scenario

logger = logging.getLogger(__name__)

SHIPPED_SCENARIO_DIR = Path(__file__).parent / "data"


class ScenarioError(Exception):
    """A scenario that cannot be loaded or run; the message names the file and the field."""


class ScenarioNotFoundError(ScenarioError, LookupError):
    def __init__(self, slug: str, available: Iterable[str]) -> None:
        names = ", ".join(sorted(available)) or "none"
        super().__init__(f"No scenario `{slug}`; available scenarios: {names}")
        self.slug = slug


@dataclass(frozen=True, slots=True)
class ScenarioSummary:
    """What assignment needs to know about a scenario."""

    slug: str
    role: str
    criteria: tuple[str, ...]
    difficulty: Difficulty
    title: str

    @property
    def rank(self) -> int:
        return DIFFICULTIES.index(self.difficulty)


def _format_validation_error(path: Path, exc: ValidationError) -> str:
    lines = [f"{path}: the scenario is not valid:"]
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        lines.append(f"  - {where}: {error['msg']}")
    return "\n".join(lines)


def parse_scenario(
    data: object, *, source: Path, company: CompanyProfile, personas: PersonaLibrary
) -> Scenario:
    """Validate one scenario's YAML data against the schema, the company and the personas."""
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: a scenario file must hold a mapping with `slug` and `role`")
    try:
        rendered = company.render_tree(data)
    except CompanyError as exc:
        raise ScenarioError(f"{source}: {exc}") from None
    try:
        scenario = Scenario.model_validate(rendered)
    except ValidationError as exc:
        raise ScenarioError(_format_validation_error(source, exc)) from None
    if scenario.persona not in personas:
        raise ScenarioError(
            f"{source}: persona: no persona `{scenario.persona}`; available personas: "
            f"{', '.join(personas.slugs) or 'none'}"
        )
    for i, product_id in enumerate(scenario.products):
        try:
            company.product(product_id)
        except CompanyError as exc:
            raise ScenarioError(f"{source}: products.{i}: {exc}") from None
    persona = personas.get(scenario.persona)
    clash = {h.id for h in persona.held_back} & {h.id for h in scenario.held_back}
    if clash:
        raise ScenarioError(
            f"{source}: held_back: ids {sorted(clash)} are already used by persona "
            f"`{persona.slug}`; rename them"
        )
    return scenario


def load_scenario(path: Path, company: CompanyProfile, personas: PersonaLibrary) -> Scenario:
    try:
        data = read_yaml(path, "scenario")
    except ValueError as exc:
        raise ScenarioError(str(exc)) from None
    return parse_scenario(data, source=path, company=company, personas=personas)


class ScenarioLibrary:
    """The scenarios of one organisation, with their personas and the company profile."""

    def __init__(
        self,
        scenarios: Iterable[Scenario],
        *,
        personas: PersonaLibrary,
        company: CompanyProfile,
        errors: Iterable[str] = (),
        paths: dict[str, Path] | None = None,
    ) -> None:
        self.personas = personas
        self.company = company
        self.errors: list[str] = list(errors)
        """Files that were set aside, each with the reason."""
        self.paths: dict[str, Path] = dict(paths or {})
        self._by_slug: dict[str, Scenario] = {}
        for scenario in scenarios:
            if scenario.slug in self._by_slug:
                raise ScenarioError(f"Two scenarios share the slug `{scenario.slug}`; rename one")
            self._by_slug[scenario.slug] = scenario

    @classmethod
    def from_dir(
        cls,
        company: CompanyProfile,
        personas: PersonaLibrary,
        directory: Path | None = None,
    ) -> ScenarioLibrary:
        """Load every `*.yaml` scenario in `directory` (default: the shipped scenarios).

        A file that does not load is set aside with its reason in `errors`; the rest load.
        """
        directory = directory or SHIPPED_SCENARIO_DIR
        files = sorted(directory.glob("*.yaml"))
        if not files:
            raise ScenarioError(f"{directory}: no scenario files (*.yaml)")
        scenarios: list[Scenario] = []
        errors: list[str] = []
        paths: dict[str, Path] = {}
        seen: set[str] = set()
        for path in files:
            try:
                scenario = load_scenario(path, company, personas)
            except ScenarioError as exc:
                logger.warning("scenario set aside", extra={"path": str(path)})
                errors.append(str(exc))
                continue
            if scenario.slug in seen:
                errors.append(f"{path}: slug `{scenario.slug}` is already used by another file")
                continue
            seen.add(scenario.slug)
            scenarios.append(scenario)
            paths[scenario.slug] = path
        library = cls(scenarios, personas=personas, company=company, errors=errors, paths=paths)
        logger.debug("scenarios loaded", extra={"count": len(library), "dir": str(directory)})
        return library

    def __len__(self) -> int:
        return len(self._by_slug)

    def __contains__(self, slug: object) -> bool:
        return slug in self._by_slug

    @property
    def slugs(self) -> list[str]:
        return sorted(self._by_slug)

    def get(self, slug: str) -> Scenario:
        try:
            return self._by_slug[slug]
        except KeyError:
            raise ScenarioNotFoundError(slug, self._by_slug) from None

    def persona_for(self, scenario: Scenario) -> Persona:
        return self.personas.get(scenario.persona)

    def held_back_for(self, scenario: Scenario) -> list[HeldBack]:
        """The persona's held-back facts followed by the scenario's own."""
        return [*self.persona_for(scenario).held_back, *scenario.held_back]

    def all(self) -> list[Scenario]:
        return [self._by_slug[slug] for slug in self.slugs]

    def find(
        self,
        *,
        role: str | None = None,
        criterion: str | None = None,
        difficulty: Difficulty | None = None,
    ) -> list[Scenario]:
        """Scenarios matching every filter given, by slug."""
        return [
            s
            for s in self.all()
            if (role is None or s.role == role)
            and (criterion is None or criterion in s.criterion_ids)
            and (difficulty is None or s.difficulty == difficulty)
        ]

    @staticmethod
    def summarise(scenario: Scenario) -> ScenarioSummary:
        return ScenarioSummary(
            slug=scenario.slug,
            role=scenario.role,
            criteria=scenario.criterion_ids,
            difficulty=scenario.difficulty,
            title=scenario.title,
        )

    def scenarios(self) -> Sequence[ScenarioSummary]:
        """Every scenario that can be assigned (the coaching engine's catalogue)."""
        return [self.summarise(s) for s in self.all()]

    def coverage(self) -> dict[tuple[str, str], set[Difficulty]]:
        """(role, criterion id) to the difficulties at which some scenario targets it."""
        covered: dict[tuple[str, str], set[Difficulty]] = {}
        for scenario in self.all():
            for cid in scenario.criterion_ids:
                covered.setdefault((scenario.role, cid), set()).add(scenario.difficulty)
        return covered
