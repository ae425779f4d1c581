"""The company profile: products, policies, values and vocabulary that practice draws on.

Personas, scenarios and persona prompts speak the company's own language. Their text may
refer to the profile with placeholders, filled in when the file is loaded, so a price or a
policy is written once:

- `{company}`: the company name, `{company.short}`: its short name;
- `{product:ID}`: a product's name, `{price:ID}`: its monthly price (`34.99`),
  `{term:ID}`: its contract length in months;
- `{policy:ID}`: a policy's name, `{value:ID}`: a value's name.

An unknown placeholder is a load error that names the field and the placeholder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SHIPPED_COMPANY_FILE = Path(__file__).parent / "data" / "company.yaml"

_ID = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9\-]*$")]
_PLACEHOLDER = re.compile(r"\{(company(?:\.short)?|(product|price|term|policy|value):([^{}\s]+))\}")


class CompanyError(Exception):
    """A company profile that cannot be loaded, or text that refers to something not in it."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Product(_Frozen):
    id: _ID
    name: str
    kind: Literal["broadband", "tv", "mobile", "bundle", "add-on"]
    monthly_price: float = Field(ge=0)
    """Pounds per month at the start of the contract."""
    contract_months: int = Field(ge=0)
    """0 means a rolling monthly plan."""
    summary: str
    """What it is, in the words advisors use."""
    download_mbps: int | None = Field(default=None, ge=1)
    upload_mbps: int | None = Field(default=None, ge=1)
    data_gb: int | None = Field(default=None, ge=1)
    """Monthly data allowance of a mobile plan."""


class Policy(_Frozen):
    id: _ID
    name: str
    rule: str
    """The policy as an advisor states it to a customer."""
    advisor_must: list[str] = []
    """What an advisor says or does because of the policy."""


class Value(_Frozen):
    id: _ID
    name: str
    means: str
    """What the value looks like on a call, in observable terms."""


class PreferredTerm(_Frozen):
    use: str
    instead_of: list[str] = Field(min_length=1)


class Vocabulary(_Frozen):
    glossary: dict[str, str] = {}
    """Company words and what they mean, e.g. `hub: the Harbor router`."""
    prefer: list[PreferredTerm] = []
    """Words the company uses in place of generic ones."""


class CompanyProfile(_Frozen):
    name: str
    short_name: str
    region: str
    description: str
    advisor_greeting: str
    """How an advisor answers the phone."""
    competitors: list[str] = []
    products: list[Product] = Field(min_length=1)
    policies: list[Policy] = []
    values: list[Value] = []
    vocabulary: Vocabulary = Vocabulary()

    @model_validator(mode="after")
    def _unique_ids(self) -> CompanyProfile:
        for label, items in (
            ("product", self.products),
            ("policy", self.policies),
            ("value", self.values),
        ):
            ids = [item.id for item in items]
            repeated = sorted({i for i in ids if ids.count(i) > 1})
            if repeated:
                raise ValueError(f"{label} ids must be unique; repeated: {repeated}")
        return self

    def product(self, product_id: str) -> Product:
        for product in self.products:
            if product.id == product_id:
                return product
        known = ", ".join(p.id for p in self.products)
        raise CompanyError(f"No product `{product_id}` in the company profile; known: {known}")

    def policy(self, policy_id: str) -> Policy:
        for policy in self.policies:
            if policy.id == policy_id:
                return policy
        known = ", ".join(p.id for p in self.policies)
        raise CompanyError(f"No policy `{policy_id}` in the company profile; known: {known}")

    def value(self, value_id: str) -> Value:
        for value in self.values:
            if value.id == value_id:
                return value
        known = ", ".join(v.id for v in self.values)
        raise CompanyError(f"No value `{value_id}` in the company profile; known: {known}")

    def render(self, text: str) -> str:
        """Fill the profile's placeholders in `text`; raise `CompanyError` for unknown ones."""

        def fill(match: re.Match[str]) -> str:
            whole, kind, ref = match.group(1), match.group(2), match.group(3)
            if whole == "company":
                return self.name
            if whole == "company.short":
                return self.short_name
            if kind == "product":
                return self.product(ref).name
            if kind == "price":
                return f"{self.product(ref).monthly_price:.2f}"
            if kind == "term":
                return str(self.product(ref).contract_months)
            if kind == "policy":
                return self.policy(ref).name
            return self.value(ref).name

        return _PLACEHOLDER.sub(fill, text)

    def render_tree(self, data: Any, *, where: str = "") -> Any:
        """`render` every string inside nested YAML data; errors name the field path."""
        if isinstance(data, str):
            try:
                return self.render(data)
            except CompanyError as exc:
                raise CompanyError(f"{where or '(top level)'}: {exc}") from None
        if isinstance(data, Mapping):
            return {
                key: self.render_tree(value, where=f"{where}.{key}" if where else str(key))
                for key, value in data.items()
            }
        if isinstance(data, list):
            return [self.render_tree(item, where=f"{where}.{i}") for i, item in enumerate(data)]
        return data

    def avoided_terms(self, text: str) -> list[tuple[str, str]]:
        """Generic words in `text` the company replaces, as (found, preferred) pairs."""
        found: list[tuple[str, str]] = []
        for term in self.vocabulary.prefer:
            for generic in term.instead_of:
                if re.search(rf"\b{re.escape(generic)}\b", text, re.IGNORECASE):
                    found.append((generic, term.use))
        return found

    def prompt_summary(self, *, product_ids: list[str] | None = None) -> str:
        """The profile as plain lines, for a persona's system prompt."""
        products = self.products
        if product_ids:
            products = [p for p in self.products if p.id in product_ids] or self.products
        lines = [f"{self.name} ({self.short_name}): {self.description.strip()}"]
        lines.append("Products:")
        for p in products:
            term = f"{p.contract_months}-month contract" if p.contract_months else "rolling monthly"
            lines.append(f"- {p.name}: {p.summary} ({p.monthly_price:.2f} a month, {term})")
        if self.policies:
            lines.append("Policies:")
            lines.extend(f"- {p.name}: {p.rule}" for p in self.policies)
        if self.vocabulary.glossary:
            lines.append("Words people use about Harbor:")
            lines.extend(
                f"- {word}: {meaning}" for word, meaning in self.vocabulary.glossary.items()
            )
        if self.competitors:
            lines.append(f"Competitors: {', '.join(self.competitors)}")
        return "\n".join(lines)


def _format_validation_error(path: Path, exc: ValidationError) -> str:
    lines = [f"{path}: the company profile is not valid:"]
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        lines.append(f"  - {where}: {error['msg']}")
    return "\n".join(lines)


def load_company(path: Path | None = None) -> CompanyProfile:
    """Load and validate a company profile (default: the shipped Harbor Broadband profile)."""
    path = path or SHIPPED_COMPANY_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CompanyError(
            f"{path}: no such company profile; set COACHLOOP_PRACTICE__COMPANY_FILE"
        ) from None
    except UnicodeDecodeError as exc:
        raise CompanyError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except yaml.YAMLError as exc:
        raise CompanyError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise CompanyError(
            f"{path}: a company profile must hold a mapping with `name` and `products`"
        )
    try:
        return CompanyProfile.model_validate(data)
    except ValidationError as exc:
        raise CompanyError(_format_validation_error(path, exc)) from None
