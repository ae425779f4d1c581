"""Process settings, read once at start-up from `COACHLOOP_` variables and `.env`.

Only `app.py` and worker entry points call :func:`get_settings`; everything below them
receives the values it needs as arguments.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

DEFAULT_DATA_DIR = Path("data")


class SlackSettings(BaseModel):
    bot_token: SecretStr | None = None
    app_token: SecretStr | None = None
    """Socket Mode token; without one the app serves Slack over HTTP."""
    signing_secret: SecretStr | None = None
    api_base_url: str | None = None
    """Override of Slack's Web API address, for a proxy or a local test double."""
    web_base_url: str | None = None
    """The web app's public address, for dashboard and voice practice links; unset: no links."""
    host: str = "0.0.0.0"
    """HTTP mode: the address to listen on for Slack's requests (at `/slack/events`)."""
    port: int = Field(default=3000, ge=1, le=65535)
    messages_per_minute: int = Field(default=60, ge=1)
    """Delivery budget per Web API method, kept under Slack's own limits."""
    channel_interval_s: float = Field(default=1.0, ge=0)
    """Least time between two messages to the same conversation (Slack allows about 1/s)."""
    max_attempts: int = Field(default=8, ge=1)
    """Tries of a message through passing failures before it is recorded as undeliverable."""
    poll_interval_s: float = Field(default=5.0, gt=0)
    """How often the delivery worker looks for new messages in the outbox."""


class LlmSettings(BaseModel):
    base_url: str | None = None
    api_key: SecretStr | None = None
    model: str = "gpt-4o-mini"
    max_concurrency: int = Field(default=4, ge=1)
    requests_per_minute: int = Field(default=120, ge=1)
    max_retries: int = Field(default=4, ge=0)
    timeout_s: float = Field(default=60.0, gt=0)
    redact: bool | None = None
    """Redact card numbers, ids, phones and e-mails before text leaves the machine.

    Unset means: on for any endpoint that is not on this machine.
    """


class VoiceSettings(BaseModel):
    whisper_model: str = "base"
    """`base`, `tiny.en`, or a folder holding any CTranslate2 Whisper model."""
    whisper_compute_type: str = "int8"
    whisper_cpu_threads: int = Field(default=2, ge=1)
    whisper_beam_size: int = Field(default=1, ge=1)
    """1 decodes greedily (fastest, for live practice); 5 is Whisper's own default."""
    whisper_language: str | None = "en"
    """Language spoken; unset means detect it per recording (multilingual models only)."""
    model_cache_dir: Path | None = None
    """Where prepared speech models are kept; unset means `models/` under the data dir."""
    piper_voice: str = "en_US-joe-medium"
    """`en_US-joe-medium`, or the path of a Piper `.onnx` voice with its `.onnx.json` beside it."""
    tts_threads: int = Field(default=2, ge=1)
    tts_speed: float = Field(default=1.0, ge=0.25, le=4.0)
    """Speaking rate; personas may set their own."""
    tts_variation: float = Field(default=1.0, ge=0.0, le=2.0)
    """How much pitch and timing vary (0 is flat); personas may set their own."""
    sample_rate_hz: int = 16_000
    recording_agent_channel: Literal["left", "right", "none"] = "left"
    """Channel of a stereo call recording that holds the rep; `none` transcribes it mixed."""
    recording_mono_speakers: Literal["other", "alternate"] = "other"
    """Speakers of a mono recording: all `other`, or alternating agent and customer per pause."""
    web_practice: bool = True
    """Serve voice practice from the web app over its WebSocket (loads the speech models when
    `coachloop serve` starts)."""
    turn_detection: Literal["vad", "turn-detector"] = "vad"
    """End of the rep's turn: after `endpointing_delay_s` of silence (`vad`), or when
    LiveKit's local end-of-turn model agrees (`turn-detector`, waiting up to 3 s)."""
    vad_silence_s: float = Field(default=0.3, ge=0.1, le=3.0)
    """Silence that ends a stretch of speech for the voice activity detector (Silero)."""
    endpointing_delay_s: float = Field(default=0.2, ge=0.05, le=5.0)
    """Further silence after that before the rep's turn ends (the turn also waits for its
    transcript, which usually takes longer)."""
    interruption_min_s: float = Field(default=0.4, ge=0.05, le=5.0)
    """How long the rep must talk over the persona to stop it."""


class IngestSettings(BaseModel):
    unknown_reps: Literal["create", "reject"] = "create"
    """What to do with a call whose rep is not in the organisation yet."""
    max_file_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    agent_labels: list[str] = ["agent", "rep", "advisor", "associate", "csr", "employee"]
    customer_labels: list[str] = ["customer", "caller", "client", "user", "member", "prospect"]
    mapping_file: Path | None = None
    """Mapping YAML for other platforms' JSON or CSV exports; `--mapping FILE` overrides it."""


class CalibrationSettings(BaseModel):
    """The go-live gate and the checks that follow it (see `coachloop calibrate`)."""

    min_exact: float = Field(default=0.85, ge=0, le=1)
    """Exact agreement a criterion needs, between humans and for the judge against them."""
    min_kappa: float = Field(default=0.70, ge=-1, le=1)
    """Quadratic-weighted kappa a criterion needs, on the same two comparisons."""
    min_calls: int = Field(default=10, ge=1)
    """Calls rated by at least two people before a criterion can pass."""
    rewrite_share: float = Field(default=0.30, ge=0, le=1)
    """Suggest rewriting a criterion when raters are more than one level apart this often."""
    drift_sample_size: int = Field(default=30, ge=1)
    """Calls per periodic human sample after go-live."""
    calibration_set: str = "calibration"
    """Ratings imported under this set name are the calibration round."""
    sample_prefix: str = "sample"
    """Ratings in sets whose name starts with this are post-go-live drift samples."""
    bootstrap_resamples: int = Field(default=1000, ge=0)
    confidence: float = Field(default=0.95, gt=0, lt=1)
    seed: int = 0


class PracticeSettings(BaseModel):
    """Practice sessions: where personas and scenarios live, which persona and judge to use."""

    company_file: Path | None = None
    """Company profile YAML; unset means the shipped one in `config/data/company.yaml`."""
    persona_dir: Path | None = None
    """Folder of persona YAML files; unset means the shipped personas."""
    scenario_dir: Path | None = None
    """Folder of scenario YAML files; unset means the shipped scenarios."""
    checkpoint_url: str = ""
    """Where sessions are kept between turns: empty means `practice.sqlite` in the data dir;
    a `postgresql://` URL uses PostgreSQL."""
    persona_engine: Literal["auto", "scripted", "llm"] = "auto"
    """`auto` uses the LLM persona when an LLM endpoint is configured, else the scripted one."""
    judge: Literal["offline", "llm"] = "offline"


class WebSettings(BaseModel):
    """The web app: where it listens, how sessions are kept, and sign-in behind a proxy."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    secret_key: SecretStr | None = None
    """Signs session cookies; unset means one generated once and kept in `web-secret` under
    the data dir (so sessions survive a restart)."""
    https_only: bool = False
    """Send the session cookie over HTTPS only; turn on whenever the app is served over TLS."""
    session_hours: float = Field(default=12, gt=0)
    max_failed_logins: int = Field(default=5, ge=1)
    """Failed passwords in a row before the account is locked for `lockout_minutes`."""
    lockout_minutes: float = Field(default=15, ge=0)
    proxy_user_header: str | None = None
    """Trust this request header (e.g. `X-Forwarded-Email` from oauth2-proxy) to name the
    signed-in person by e-mail or external id; only from `trusted_proxies`."""
    trusted_proxies: list[str] = ["127.0.0.1", "::1"]
    """Addresses or networks (CIDR) whose `proxy_user_header` is believed."""


class LiveKitSettings(BaseModel):
    """Voice practice in LiveKit rooms: the server, its API key, the worker and join tokens.

    `url`, `api_key` and `api_secret` are also read from LiveKit's own variable names
    (`LIVEKIT_URL`, `LIVEKIT_API_KEY`, `LIVEKIT_API_SECRET`); the `COACHLOOP_LIVEKIT__` names
    win when both are set.
    """

    url: str | None = None
    """The LiveKit server the worker registers with (`wss://livekit.example.com`)."""
    public_url: str | None = None
    """The address browsers connect to, when it differs from `url`; unset: `url`."""
    api_key: str | None = None
    api_secret: SecretStr | None = None
    agent_name: str = Field(default="coachloop-practice", min_length=1, max_length=64)
    """The name the worker registers under; join tokens dispatch this agent to the room."""
    room_prefix: str = Field(default="practice", pattern=r"^[a-z][a-z0-9-]{0,31}$")
    """Start of every practice room's name, to tell them apart on a shared LiveKit server."""
    token_ttl_minutes: float = Field(default=10, gt=0, le=24 * 60)
    """How long a rep's join token stays valid; a session that started runs on past it."""
    idle_processes: int = Field(default=1, ge=0)
    """Job processes the worker keeps warm, each with the speech models loaded."""
    load_threshold: float = Field(default=0.7, gt=0, le=1)
    """CPU load above which the worker stops taking new rooms (another worker gets them)."""
    health_port: int = Field(default=8081, ge=0, le=65535)
    """The worker's health check (`GET /` answers `OK`); 0 picks a free port."""

    @property
    def enabled(self) -> bool:
        return not self.missing()

    def missing(self) -> list[str]:
        """The variables still needed to use LiveKit, by their LiveKit names."""
        needed = {
            "LIVEKIT_URL": self.url,
            "LIVEKIT_API_KEY": self.api_key,
            "LIVEKIT_API_SECRET": self.api_secret,
        }
        return [name for name, value in needed.items() if not value]

    @property
    def client_url(self) -> str | None:
        return self.public_url or self.url


PLAIN_LIVEKIT_VARIABLES = {
    "url": "LIVEKIT_URL",
    "api_key": "LIVEKIT_API_KEY",
    "api_secret": "LIVEKIT_API_SECRET",
}


class _PlainLiveKitVariables(PydanticBaseSettingsSource):
    """`LIVEKIT_URL`, `LIVEKIT_API_KEY` and `LIVEKIT_API_SECRET` from the environment or `.env`,
    below the `COACHLOOP_LIVEKIT__` names."""

    def __init__(self, settings_cls: type[BaseSettings], *sources: EnvSettingsSource) -> None:
        super().__init__(settings_cls)
        self._sources = sources

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found: dict[str, str] = {}
        for source in self._sources:
            for key, name in PLAIN_LIVEKIT_VARIABLES.items():
                value = source.env_vars.get(name.lower()) or source.env_vars.get(name)
                if value and key not in found:
                    found[key] = value
        return {"livekit": found} if found else {}


class JobSettings(BaseModel):
    broker_url: str | None = None
    """Celery broker, e.g. `redis://127.0.0.1:6379/0` or `amqp://guest:guest@127.0.0.1:5672//`;
    unset runs every pipeline step in the calling process."""
    queue: str = "coachloop"
    """Queue the scoring and coaching jobs go to; workers listen on it."""
    batch_size: int = Field(default=16, ge=1, le=500)
    """Calls per job: scored together by the judge, then coached."""
    judge: Literal["offline", "llm"] = "offline"
    """Which judge the workers score with."""
    max_retries: int = Field(default=5, ge=0)
    """Attempts after a job fails (database or endpoint unreachable), with backoff."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="COACHLOOP_",
        env_nested_delimiter="__",
        env_file=".env",
        env_ignore_empty=True,
        extra="ignore",
    )

    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str = Field(
        default="",
        validation_alias=AliasChoices("COACHLOOP_DATABASE_URL", "DATABASE_URL"),
    )
    """SQLAlchemy URL; empty means a SQLite file under `data_dir`."""
    rubric_dir: Path | None = None
    """Folder of rubric YAML files; unset means the rubrics shipped in `config/data/rubrics`."""
    log_level: str = "INFO"
    log_json: bool = False
    redact_pii_logs: bool = True
    slack: SlackSettings = SlackSettings()
    llm: LlmSettings = LlmSettings()
    voice: VoiceSettings = VoiceSettings()
    ingest: IngestSettings = IngestSettings()
    calibration: CalibrationSettings = CalibrationSettings()
    practice: PracticeSettings = PracticeSettings()
    web: WebSettings = WebSettings()
    livekit: LiveKitSettings = LiveKitSettings()
    jobs: JobSettings = JobSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        plain = [s for s in (env_settings, dotenv_settings) if isinstance(s, EnvSettingsSource)]
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            _PlainLiveKitVariables(settings_cls, *plain),
            file_secret_settings,
        )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'coachloop.db'}"

    @property
    def slack_enabled(self) -> bool:
        return self.slack.bot_token is not None

    @property
    def llm_enabled(self) -> bool:
        return self.llm.base_url is not None or self.llm.api_key is not None


@lru_cache
def get_settings() -> Settings:
    return Settings()
