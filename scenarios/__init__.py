"""Practice: scenarios, the roleplay graph, and the driver every surface uses.

The driver API (terminal, Slack thread, web chat and voice agent all call these):

```python
driver = PracticeDriver(
    library=library,          # ScenarioLibrary.from_dir(company, personas)
    rubrics=rubrics,          # RubricLibrary.from_dir()
    engine=make_engine("auto", settings.llm),   # scripted persona, or the LLM persona
    observer=TurnObserver(SentenceEncoder()),
    recorder=PracticeRecorder(judge, rubrics, db_engine),
    checkpointer=saver,       # async with open_checkpointer(path_or_url) as saver
)

start = await driver.start_session("support-double-charge", rep_external_id="e-1042")
start.session_id, start.opening            # the persona speaks first

turn = await driver.send_rep_turn(start.session_id, "Calls are recorded ...")
turn.text, turn.ended, turn.emotion        # the persona's answer, or its last words

async for piece in driver.stream_rep_turn(start.session_id, "..."):   # voice: early tokens
    ...

result = await driver.end_session(start.session_id)   # scored feedback, stored, assignment closed
```

- `send_rep_turn(id, "")` reports a silence; the persona nudges, and gives up after the
  scenario's `max_silences`. Surfaces wait `SessionStart.silence_timeout_s` before sending one.
- "let's wrap up" (or `/end`) ends the session cleanly; so do success, the persona walking
  out, the turn limit and the time box. An ended session's `PersonaTurn.result` (or
  `end_session`) holds the `PracticeResult`: level, moment and what good looks like per
  criterion, and the rep's real-call level on each targeted criterion.
- Sessions are checkpointed after every step (thread id = session id), so a new driver on
  the same checkpointer carries on where a stopped process left off.
"""

from scenarios.engines import PersonaEngine, ScriptedPersona, make_engine
from scenarios.library import (
    SHIPPED_SCENARIO_DIR,
    ScenarioError,
    ScenarioLibrary,
    ScenarioNotFoundError,
    ScenarioSummary,
    load_scenario,
    parse_scenario,
)
from scenarios.observe import Observation, TurnObserver
from scenarios.practice import (
    PersonaTurn,
    PracticeDriver,
    RepNotFoundError,
    SessionNotFoundError,
    SessionStart,
    SessionView,
    open_checkpointer,
)
from scenarios.results import (
    Comparison,
    CriterionFeedback,
    Moment,
    PracticeRecorder,
    PracticeResult,
)
from scenarios.schema import Scenario

__all__ = [
    "SHIPPED_SCENARIO_DIR",
    "Comparison",
    "CriterionFeedback",
    "Moment",
    "Observation",
    "PersonaEngine",
    "PersonaTurn",
    "PracticeDriver",
    "PracticeRecorder",
    "PracticeResult",
    "RepNotFoundError",
    "Scenario",
    "ScenarioError",
    "ScenarioLibrary",
    "ScenarioNotFoundError",
    "ScenarioSummary",
    "ScriptedPersona",
    "SessionNotFoundError",
    "SessionStart",
    "SessionView",
    "TurnObserver",
    "load_scenario",
    "make_engine",
    "open_checkpointer",
    "parse_scenario",
]
