from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from app import app
from ingest.org import OrgImportError, import_org
from store.models import Access, Person, Team, TeamManager

ORG_YAML = """
teams:
  - {slug: support-north, name: Support North, managers: [m-ana]}
people:
  - {external_id: m-ana, name: Ana Ortiz, email: ana@harbor.example, access: manager}
  - {external_id: r-ben, name: Ben Okafor, access: rep, role: support, team: support-north,
     manager: m-ana, pilot: true, slack_user_id: U0B2}
  - {external_id: r-cy, name: Cy Lund, access: rep, role: support, team: support-north, manager: m-ana}
  - {external_id: adm, name: Ola Admin, access: admin}
"""

ORG_CSV = """external_id,name,email,slack_user_id,access,role,team,team_name,manager,pilot
m-ana,Ana Ortiz,ana@harbor.example,U0A1,manager,,support-north;sales,,,
r-ben,Ben Okafor,ben@harbor.example,U0B2,rep,support,support-north,Support North,m-ana,yes
r-dee,Dee Park,,,rep,sales,sales,Sales,m-ana,
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_yaml_import_creates_everyone(db_engine: Engine, tmp_path: Path) -> None:
    report = import_org(db_engine, _write(tmp_path, "org.yaml", ORG_YAML))

    with Session(db_engine) as session:
        people = {p.external_id: p for p in session.exec(select(Person)).all()}
        team = session.exec(select(Team)).one()
        managers = session.exec(select(TeamManager)).all()

    assert report.created == {"team": 1, "person": 4, "manager": 1}
    assert people["r-ben"].pilot and people["r-ben"].slack_user_id == "U0B2"
    assert people["r-ben"].manager_id == people["m-ana"].id
    assert people["adm"].access == Access.admin
    assert team.name == "Support North"
    assert [(m.team_id, m.person_id) for m in managers] == [(team.id, people["m-ana"].id)]


def test_second_import_is_a_no_op_and_changes_are_reported(
    db_engine: Engine, tmp_path: Path
) -> None:
    path = _write(tmp_path, "org.yaml", ORG_YAML)
    import_org(db_engine, path)

    again = import_org(db_engine, path)
    edited = import_org(
        db_engine, _write(tmp_path, "org2.yaml", ORG_YAML.replace("Cy Lund", "Cy Lundqvist"))
    )

    assert not again.changed and again.unchanged["person"] == 4
    assert edited.updated["person"] == 1
    assert edited.changes == ["person r-cy: name 'Cy Lund' -> 'Cy Lundqvist'"]


def test_csv_import_with_multi_team_manager(db_engine: Engine, tmp_path: Path) -> None:
    report = import_org(db_engine, _write(tmp_path, "org.csv", ORG_CSV))

    with Session(db_engine) as session:
        slugs = {t.slug for t in session.exec(select(Team)).all()}
        links = session.exec(select(TeamManager)).all()
        ben = session.exec(select(Person).where(Person.external_id == "r-ben")).one()

    assert report.errors == []
    assert slugs == {"support-north", "sales"}
    assert len(links) == 2
    assert ben.pilot is True


def test_bad_rows_are_set_aside_and_named(db_engine: Engine, tmp_path: Path) -> None:
    text = (
        ORG_CSV
        + "r-eve,,,,rep,sales,sales,,m-ana,\nr-fox,Fox,,,boss,sales,sales,,,\nr-gil,Gil,,,rep,sales,sales,,m-nobody,\n"
    )

    report = import_org(db_engine, _write(tmp_path, "org.csv", text))

    assert len(report.errors) == 3
    assert "line 5" in report.errors[0] and "name" in report.errors[0]
    assert "line 6" in report.errors[1] and "access" in report.errors[1]
    assert "m-nobody" in report.errors[2]
    assert report.created["person"] == 4  # the three good rows and r-gil without a manager


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("org.yaml", "", "empty"),
        ("org.yaml", "teams: [", "not valid YAML"),
        ("org.json", "{}", "unsupported file type"),
        ("org.csv", "who,what\n1,2\n", "header row"),
        ("org.yaml", "staff: []\n", "unknown top-level keys"),
    ],
)
def test_unreadable_files_raise_clear_errors(
    sqlite_engine: Engine, tmp_path: Path, name: str, content: str, message: str
) -> None:
    with pytest.raises(OrgImportError, match=message):
        import_org(sqlite_engine, _write(tmp_path, name, content))


def test_non_utf8_file_names_the_byte(sqlite_engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "org.csv"
    path.write_bytes(b"external_id,name\nr-1,Jos\xe9\n")

    with pytest.raises(OrgImportError, match="not UTF-8 text \\(byte 24\\)"):
        import_org(sqlite_engine, path)


def test_cli_import_and_show(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COACHLOOP_DATA_DIR", str(tmp_path / "data"))
    from config.settings import get_settings

    get_settings.cache_clear()
    path = _write(tmp_path, "org.yaml", ORG_YAML)

    first = CliRunner().invoke(app, ["org", "import", str(path)])
    shown = CliRunner().invoke(app, ["org", "show"])
    get_settings.cache_clear()

    assert first.exit_code == 0, first.output
    assert "created 1 team, 4 person, 1 manager" in first.output
    assert "Support North" in shown.output and "Ana Ortiz" in shown.output
