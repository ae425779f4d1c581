"""The pages in headless Chromium: sign-in, the team dashboard's heatmap and charts, the
interaction page's evidence, calibration by two raters, the rep page and its permissions, the
outbox, and a phone-size screen.

The app runs under uvicorn over the seeded organisation (built through the real coaching
pipeline: two teams, a month of scored calls, triggers, a cohort response, feedback, outcomes).
Screenshots go to `test-artifacts/` and are listed at the end of the run.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.web.seed import PASSWORD, Seed

Shoot = Callable[[Page, str], Path]

PHONE = {"width": 390, "height": 844}


def sign_in(page: Page, who: str, *, then: str | None = None) -> None:
    """Sign in through the form, as a person would."""
    page.goto("/login" + (f"?next={then}" if then else ""))
    page.get_by_label("Employee id or e-mail").fill(who)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("load")
    assert "/login" not in page.url, page.locator("#login-error").all_inner_texts()


@pytest.fixture
def new_context(browser: Browser, web_url: str) -> Iterator[Callable[..., Page]]:
    """Pages in contexts of their own (separate cookies), for a second person at once."""
    contexts: list[Any] = []

    def open_page(**options: Any) -> Page:
        options.setdefault("viewport", {"width": 1280, "height": 900})
        context = browser.new_context(base_url=web_url, **options)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


_CHARTS = """
() => Array.from(document.querySelectorAll("canvas[data-chart]")).map((canvas) => {
  const chart = window.Chart ? window.Chart.getChart(canvas) : undefined;
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
  const points = chart ? chart.data.datasets.map((ds) =>
      ds.data.filter((v) => v !== null && v !== undefined &&
                     (typeof v !== "object" || v.y !== null)).length) : [];
  const rendered = chart ? chart.data.datasets.map((_ds, i) =>
      chart.getDatasetMeta(i).data.filter((el) => !el.skip).length) : [];
  return { id: canvas.id, drawn: canvas.dataset.drawn === "true", type: chart ? chart.config.type : null,
           points, rendered, painted, area: canvas.width * canvas.height };
})
"""


def charts_on(page: Page) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = page.evaluate(_CHARTS)
    return found


def no_horizontal_overflow(page: Page) -> tuple[int, int]:
    sizes: list[int] = page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth]"
    )
    return sizes[0], sizes[1]


def test_a_manager_signs_in_and_sees_the_heatmap_and_the_charts(
    web_page: Page, web_seed: Seed, shoot_page: Shoot
) -> None:
    sign_in(web_page, "mgr-north")

    assert web_page.url.endswith("/teams/north")
    expect(web_page.get_by_role("heading", level=1)).to_have_text("North")
    heatmap = web_page.locator("table.heatmap").first
    cells = heatmap.locator("td.cell")
    valued = heatmap.locator("td.cell:not([data-mean=''])")
    assert valued.count() >= 5 * 4  # five support reps, four criteria, all with calls
    alice = heatmap.locator("tr", has=web_page.get_by_role("link", name="Alice"))
    low = alice.locator("td[data-criterion='confirm_resolution']")
    expect(low).to_have_class(re.compile(r"\bbelow\b"))
    expect(low.locator(".mean")).to_have_text("▼ 1.00")
    expect(low.locator(".n")).to_contain_text("calls")
    dan = heatmap.locator("tr", has=web_page.get_by_role("link", name="Dan"))
    expect(dan.locator("td.cell").first.locator(".mean")).to_have_text("3.00")
    colours = {c.evaluate("el => getComputedStyle(el).backgroundColor") for c in cells.all()}
    assert len(colours) >= 2, "the heatmap cells are not coloured by level"
    expect(web_page.locator("#tile-coverage .value")).to_have_text(re.compile(r"^\d+/\d+$"))

    charts = charts_on(web_page)
    by_id = {c["id"]: c for c in charts}
    assert set(by_id) == {"team-trend", "rep-trend"}, charts
    for chart in charts:
        assert chart["drawn"] and chart["type"] == "line", chart
        assert sum(chart["points"]) > 0, f"{chart['id']} has no data points"
        assert sum(chart["rendered"]) == sum(chart["points"]), chart
        assert chart["painted"] > chart["area"] * 0.01, f"{chart['id']} is blank"
    checkpoints = web_page.locator("#checkpoints[data-loaded='true']")
    expect(checkpoints.locator("table.checkpoint-leading")).to_have_count(2)  # 30 and 60 days
    expect(checkpoints.locator("table.checkpoint-lagging").first).to_contain_text("csat")
    expect(web_page.locator("#checkpoints")).not_to_have_attribute("aria-busy", "true")
    team_spec = web_page.evaluate(
        "() => JSON.parse(document.getElementById('team-trend-data').textContent)"
    )
    assert len(by_id["team-trend"]["points"]) == len(team_spec["datasets"]) == 4
    shoot_page(web_page, "dashboard")


def test_without_scripts_the_checkpoints_open_as_a_page_of_their_own(
    new_context: Callable[..., Page],
) -> None:
    web_page = new_context(java_script_enabled=False)
    sign_in(web_page, "mgr-north")
    expect(web_page.locator("#checkpoints")).to_have_attribute("aria-busy", "true")
    link = web_page.locator("#report a[href*='/checkpoints']").first
    href = link.get_attribute("href")
    assert href is not None

    web_page.goto(href)
    expect(web_page.get_by_role("heading", level=1)).to_contain_text("checkpoints")
    expect(web_page.locator("table.checkpoint-leading")).to_have_count(2)
    web_page.get_by_label("Coaching started on").fill("2026-10-22")
    web_page.get_by_role("button", name="Show").click()
    web_page.wait_for_url(re.compile(r"since=2026-10-22"))
    expect(web_page.locator("table.checkpoint-leading")).to_have_count(1)  # 30 days reached

    other = web_page.request.get("/teams/south/checkpoints?fragment=1")
    assert other.status == 403
    bad = web_page.request.get("/teams/north/checkpoints?since=21-10-2026")
    assert bad.status == 400 and "YYYY-MM-DD" in bad.text()


def test_the_rep_trend_follows_the_chosen_rep(web_page: Page, web_seed: Seed) -> None:
    sign_in(web_page, "mgr-north")

    web_page.locator("select[name=rep]").select_option(label="Eve")
    web_page.wait_for_url(re.compile(rf"rep={web_seed.person('eve')}"))

    chart = {c["id"]: c for c in charts_on(web_page)}["rep-trend"]
    assert sum(chart["points"]) > 0 and chart["painted"] > 0
    expect(web_page.locator("#rep-trend-title")).to_be_visible()


def test_an_interaction_shows_each_criterion_s_evidence_at_its_moment(
    web_page: Page, web_seed: Seed, shoot_page: Shoot
) -> None:
    sign_in(web_page, "mgr-north")
    web_page.goto(f"/reps/{web_seed.person('bob')}")
    web_page.locator("#sessions tbody tr").first.get_by_role("link").first.click()
    web_page.wait_for_url(re.compile(r"/interactions/\d+"))

    moments = web_page.locator(".score > p > a[href^='#turn-']")
    assert moments.count() == 4
    for k in range(moments.count()):
        link = moments.nth(k)
        turn = link.get_attribute("href")
        assert turn is not None
        quote = link.evaluate("a => a.parentElement.textContent.split('“')[1].split('”')[0]")
        mark = web_page.locator(f"li{turn} mark")
        expect(mark.filter(has_text=quote).first).to_be_visible()
        colour = mark.first.evaluate("el => getComputedStyle(el).backgroundColor")
        assert colour not in ("rgba(0, 0, 0, 0)", "transparent")
    last = moments.nth(moments.count() - 1)
    target = last.get_attribute("href")
    last.click()

    assert web_page.url.endswith(str(target))
    matched = web_page.evaluate("() => document.querySelector('li:target')?.id")
    assert f"#{matched}" == target
    expect(web_page.locator(f"li{target}")).to_be_in_viewport()
    expect(web_page.locator(f"li{target}")).to_have_class(re.compile(r"has-evidence"))
    shoot_page(web_page, "interaction")


def test_a_rep_disputes_a_score_from_the_interaction_page(web_page: Page, web_seed: Seed) -> None:
    call = web_seed.calls["cara"][-1]
    sign_in(web_page, "cara", then=f"/interactions/{call}")

    web_page.locator("#score_id").select_option(index=0)
    web_page.locator("#reason").fill("I gave the customer a time at 0:54; please listen again")
    web_page.get_by_role("button", name="Send to my manager").click()

    expect(web_page.locator(".flash")).to_contain_text("sent to your manager")
    expect(web_page.locator("#dispute .message").first).to_contain_text("please listen again")


def _rate_every_call(page: Page, set_name: str, levels: Callable[[str, int], str]) -> None:
    page.goto(f"/calibration/{set_name}")
    page.locator("#set-items tbody a").first.click()
    call = 0
    while "/calls/" in page.url:
        external_id = page.locator(".sub").inner_text().split(" · ")[1]
        assert page.locator("#rate-form input[type=radio]:checked").count() == 0
        for fieldset in page.locator("#rate-form fieldset").all():
            name = fieldset.locator("input[type=radio]").first.get_attribute("name")
            assert name is not None
            chosen = levels(name.removeprefix("level-"), call)
            fieldset.locator(f"input[value='{chosen}']").check()
        page.get_by_role("button", name="Save and go to the next call").click()
        page.wait_for_load_state("load")
        assert external_id
        call += 1
    assert page.url.endswith("#submit")


def _submit(page: Page) -> None:
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Submit my levels").click()
    page.wait_for_url(re.compile(r"/report$"))


def test_two_raters_calibrate_blind_then_read_the_agreement_report(
    new_context: Callable[..., Page], shoot_page: Shoot
) -> None:
    set_name = f"cal-{uuid.uuid4().hex[:6]}"
    admin = new_context()
    sign_in(admin, "admin")
    admin.goto("/calibration")
    admin.get_by_label("Set name").fill(set_name)
    admin.get_by_label("Rubric role").select_option("support")
    admin.get_by_label("Calls").fill("3")
    admin.get_by_role("button", name="Draw").click()
    expect(admin.locator(".flash")).to_contain_text("Added 3 calls")

    north, south = new_context(), new_context()
    sign_in(north, "mgr-north")
    sign_in(south, "mgr-south")
    _rate_every_call(north, set_name, lambda _criterion, _call: "2")

    # before submitting: north's report is closed, south sees nothing of north's levels
    north.goto(f"/calibration/{set_name}/report")
    expect(north.locator("main")).to_contain_text("Submit your own levels")
    south.goto(f"/calibration/{set_name}")
    expect(south.locator(".sub")).to_contain_text("You have rated 0 of 3")
    expect(south.locator("#set-items")).not_to_contain_text("Verifies the account holder 2")
    expect(south.get_by_role("link", name="Agreement report")).to_have_count(0)

    north.goto(f"/calibration/{set_name}")
    _submit(north)
    expect(north.locator("h1")).to_contain_text(f"Agreement report: {set_name}")
    expect(north.locator(".sub").first).to_contain_text("mgr-north")

    def south_levels(criterion: str, call: int) -> str:
        return "3" if criterion == "confirm_resolution" and call == 0 else "2"

    _rate_every_call(south, set_name, south_levels)
    south.goto(f"/calibration/{set_name}")
    _submit(south)

    south.reload()
    table = south.locator("table.agreement").first
    expect(table).to_be_visible()
    rows = table.locator("tbody tr")
    assert rows.count() >= 4
    expect(table).to_contain_text("2 raters")
    divergent = south.locator("table.divergent tbody tr")
    expect(divergent).to_have_count(1)
    expect(divergent.first).to_contain_text("mgr-north 2; mgr-south 3")
    # three calls are fewer than the gate's minimum, whatever the agreement
    expect(south.locator("#gate-status")).to_have_text("not live")
    expect(south.locator("table.agreement").first).to_contain_text("calls")
    shoot_page(south, "calibration-report")

    # the rated calls stay final after submitting
    south.goto(f"/calibration/{set_name}")
    south.locator("#set-items tbody a").first.click()
    assert south.locator("#rate-form input[type=radio]:disabled").count() > 0
    expect(south.get_by_role("button", name="Save and go to the next call")).to_have_count(0)


def test_a_rep_sees_only_their_own_page(web_page: Page, web_seed: Seed, shoot_page: Shoot) -> None:
    sign_in(web_page, "alice")

    assert web_page.url.endswith(f"/reps/{web_seed.person('alice')}")
    expect(web_page.get_by_role("heading", level=1)).to_have_text("Alice")
    expect(
        web_page.get_by_role("navigation", name="Main").get_by_role("link", name="Teams")
    ).to_have_count(0)
    charts = charts_on(web_page)
    assert len(charts) == 4 and all(c["type"] == "scatter" for c in charts), charts
    assert all(c["drawn"] and c["points"][0] > 0 and c["painted"] > 0 for c in charts), charts
    moments = web_page.locator("#sessions a[href*='#turn-']")
    assert moments.count() >= 8 * 3
    first = moments.first.get_attribute("href")
    assert first is not None and re.fullmatch(r"/interactions/\d+#turn-\d+", first)
    shoot_page(web_page, "rep-own")

    for path in (f"/reps/{web_seed.person('bob')}", "/teams/north"):
        response = web_page.goto(path)
        assert response is not None and response.status == 403, path
    expect(web_page.locator("main")).to_contain_text("Only managers and admins")
    response = web_page.goto(f"/interactions/{web_seed.calls['bob'][0]}")
    assert response is not None and response.status == 403
    api = web_page.request.get(f"/api/reps/{web_seed.person('bob')}")
    assert api.status == 403


def test_a_manager_sees_only_their_teams(web_page: Page, web_seed: Seed) -> None:
    sign_in(web_page, "mgr-north")

    response = web_page.goto(f"/reps/{web_seed.person('eve')}")
    assert response is not None and response.ok
    expect(web_page.locator("#progress tbody tr")).to_have_count(4)
    for path in ("/teams/south", f"/reps/{web_seed.person('sam')}"):
        response = web_page.goto(path)
        assert response is not None and response.status == 403, path
    expect(web_page.locator("main")).to_contain_text("not in one of your teams")
    web_page.goto("/teams")
    assert web_page.url.endswith("/teams/north")  # the only team: straight to it
    expect(web_page.locator(".sub").first).not_to_contain_text("South")


def test_the_outbox_shows_each_person_their_messages(
    web_page: Page, new_context: Callable[..., Page], shoot_page: Shoot
) -> None:
    sign_in(web_page, "mgr-north")
    web_page.goto("/outbox")
    messages = web_page.locator("#messages article.message")
    assert messages.count() > 0
    kinds = {m.get_attribute("data-kind") for m in messages.all()}
    assert "rep_feedback" in kinds and kinds & {"cohort_alert", "manager_alert", "digest"}
    recipients = {m.locator("header span").nth(2).inner_text() for m in messages.all()}
    assert "to South" not in " ".join(recipients) and "to Sam" not in recipients
    shoot_page(web_page, "outbox-manager")

    web_page.get_by_label("Kind").select_option("rep_feedback")
    web_page.wait_for_url(re.compile(r"kind=rep_feedback"))
    assert {m.get_attribute("data-kind") for m in messages.all()} == {"rep_feedback"}

    rep = new_context()
    sign_in(rep, "alice")
    rep.goto("/outbox")
    mine = rep.locator("#messages article.message")
    assert mine.count() > 0
    assert {m.locator("header span").nth(2).inner_text() for m in mine.all()} == {"to Alice"}
    link = mine.locator("a[href*='#turn-']").first
    href = link.get_attribute("href")
    link.click()
    assert href is not None and rep.url.endswith(href)
    expect(rep.locator("li:target mark").first).to_be_visible()


@pytest.mark.parametrize("who", ["mgr-north", "alice"])
def test_the_pages_fit_a_phone_screen(
    new_context: Callable[..., Page], web_seed: Seed, shoot_page: Shoot, who: str
) -> None:
    phone = new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    sign_in(phone, who)
    paths = [
        f"/reps/{web_seed.person('alice')}",
        f"/interactions/{web_seed.calls['alice'][0]}",
        "/outbox",
    ]
    if who == "mgr-north":
        paths.insert(0, "/teams/north")

    for path in paths:
        phone.goto(path)
        width, viewport = no_horizontal_overflow(phone)
        assert width <= viewport, f"{path} is {width}px wide on a {viewport}px screen"
        for chart in charts_on(phone):
            assert chart["drawn"] and chart["painted"] > 0, (path, chart)
        shoot_page(phone, path.strip("/").replace("/", "-"))
