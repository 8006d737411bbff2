"""Runtime settings, read once from ``KOMBIFY_*`` environment variables.

Every variable is named once, here. Defaults need nothing: data lives under ``KOMBIFY_HOME``
(an XDG data directory by default), the database is a SQLite file there, and Temporal is the
embedded dev server configured by ``temporal-dev.yml``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kombify.errors import ConfigError

if TYPE_CHECKING:
    from kombify.gateway.rules import Rule

# Files kombify's processes and their children (OpenTofu, Temporal) create are the owner's
# only: state, logs and manifests hold addresses and service settings that can be secrets.
PRIVATE_UMASK = 0o077


def _default_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "kombify"


class Settings(BaseSettings):
    """kombify's settings; each field is read from ``KOMBIFY_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="KOMBIFY_", extra="ignore")

    home: Path = Field(default_factory=_default_home, description="Where kombify keeps its data.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default sqlite:///$KOMBIFY_HOME/kombify.db. "
        "Use postgresql+psycopg://user:pass@host/db for PostgreSQL.",
    )
    temporal_address: str | None = Field(
        default=None,
        description="host:port of an external Temporal cluster. Unset: the embedded dev server.",
    )
    temporal_namespace: str = Field(default="default", description="Temporal namespace.")
    temporal_config: Path | None = Field(
        default=None, description="Path of temporal-dev.yml; default: the one shipped with kombify."
    )
    temporal_port: int | None = Field(
        default=None, description="Override the dev server's gRPC port from temporal-dev.yml."
    )
    temporal_ui_port: int | None = Field(
        default=None, description="Override the dev server's Web UI port from temporal-dev.yml."
    )
    task_queue: str = Field(default="kombify", description="Task queue the worker polls.")
    api_host: str = Field(default="127.0.0.1", description="Address the API listens on.")
    api_port: int = Field(default=8420, description="Port the API listens on.")
    api_url: str | None = Field(
        default=None, description="URL the CLI talks to; default http://API_HOST:API_PORT."
    )
    admin_token: SecretStr | None = Field(
        default=None,
        description="Token the API requires; default: generated into $KOMBIFY_HOME/admin-token.",
    )
    debug: bool = Field(default=False, description="Show tracebacks for unexpected errors.")
    dashboard_dir: Path | None = Field(
        default=None,
        description="The dashboard's built files, served at /. Unset: dashboard/build of the "
        "checkout kombify runs from (scripts/build-dashboard.sh makes it).",
    )
    node_wait_seconds: int = Field(
        default=0,
        ge=0,
        description="How long a deploy waits for a node that went away mid-rollout before it "
        "marks it needs-repair (0: 180 s).",
    )
    tofu_bin: str | None = Field(
        default=None,
        description="OpenTofu CLI to run (name on PATH or path). Unset: `tofu`, else `terraform`.",
    )
    notify_urls: SecretStr | None = Field(
        default=None,
        description="Apprise URLs to notify of incidents, separated by spaces or commas "
        "(json://host:port/path posts JSON; jsons:// for https). A secret: never shown.",
    )

    signup: str = Field(
        default="invite",
        description="Who may create an account: `open` (anyone), `invite` (with an invitation "
        "only, the default) or `closed` (nobody; owners add people by invitation only).",
        pattern="^(open|invite|closed)$",
    )
    session_idle_minutes: int = Field(
        default=720, ge=5, le=43200, description="A session unused this long ends (12 h)."
    )
    session_absolute_hours: int = Field(
        default=168, ge=1, le=8760, description="A session ends this long after login (7 days)."
    )
    reauth_minutes: int = Field(
        default=10,
        ge=1,
        le=1440,
        description="How recent a password (and TOTP) check must be for sensitive changes.",
    )
    public_url: str | None = Field(
        default=None,
        description="The address people reach kombify at (links in mails, OIDC redirects, the "
        "SSO token issuer); default: the API URL.",
    )
    smtp_url: SecretStr | None = Field(
        default=None,
        description="smtp://user:password@host:port (or smtps://) to send mails; without it "
        "mails are only written to the outbox table. A secret: never shown.",
    )
    mail_from: str = Field(default="kombify@localhost", description="Sender of kombify's mails.")
    redis_url: SecretStr | None = Field(
        default=None,
        description="redis://[:password@]host:port/db (or rediss://, unix://): rate limits are "
        "counted there, shared by every API instance. Unset: in this process. A secret.",
    )
    rate_limits: str = Field(
        default="auth=30/60,write=120/60,read=600/60,tries=10/60",
        description="Requests allowed per caller and window, as CLASS=COUNT/SECONDS separated by "
        "commas; classes: auth (/v1/auth/*), write (other mutating /v1 calls), read (the rest of "
        "/v1), tries (login, MFA and password-reset attempts per account and per address). "
        "Classes left out keep their default.",
    )
    cors_origins: str | None = Field(
        default=None,
        description="Origins (https://host[:port]) whose browser pages may call the API, with "
        "credentials, separated by commas. Unset: no cross-origin access.",
    )
    sso_token_minutes: int = Field(
        default=5, ge=1, le=60, description="How long an SSO token for a tool is valid."
    )
    sso_key_rotate_days: int = Field(
        default=30,
        ge=1,
        le=365,
        description="A new SSO signing key becomes active when the active one is this old.",
    )
    sso_key_grace_minutes: int = Field(
        default=1440,
        ge=2,
        le=525600,
        description="How long a retired SSO signing key stays published (and accepted) after "
        "it was retired; longer than KOMBIFY_SSO_TOKEN_MINUTES. Then it is deleted.",
    )
    sso_audiences: str = Field(
        default="",
        description="Tools this portal may issue SSO tokens for, separated by commas (besides "
        "every tool in KOMBIFY_TOOLS).",
    )
    sso_trusted_issuer: str | None = Field(
        default=None,
        description="URL of the kombify portal whose SSO tokens this instance accepts (its "
        "keys come from <issuer>/.well-known/jwks.json). Needs KOMBIFY_SSO_AUDIENCE.",
    )
    sso_audience: str | None = Field(
        default=None,
        description="This instance's tool name: the audience an accepted SSO token must carry.",
    )
    sso_jwks_cache_seconds: int = Field(
        default=300,
        ge=0,
        le=86400,
        description="How long the trusted issuer's keys are cached (an unknown key id fetches "
        "them at once); a key the issuer removed is refused at the latest after this.",
    )
    status_stream_seconds: int = Field(
        default=5,
        ge=2,
        le=3600,
        description="How often a live status stream (GET /v1/stacks/NAME/status as "
        "text/event-stream) asks the stack's nodes, in seconds (2 at least): one observation "
        "per stack and interval, however many subscribers.",
    )
    stripe_api_key: SecretStr | None = Field(
        default=None,
        description="Stripe secret key (sk_live_… or sk_test_…). Unset: billing is off and every "
        "organisation has every entitlement (a self-hosted installation).",
    )
    stripe_webhook_secret: SecretStr | None = Field(
        default=None,
        description="Signing secret (whsec_…) of the Stripe webhook endpoint that posts to "
        "/v1/billing/webhooks; required when billing is on.",
    )
    stripe_api_base: str | None = Field(
        default=None,
        description="Base URL of the Stripe API; unset: Stripe's own. Tests point it at a "
        "local stand-in.",
    )
    stripe_webhook_tolerance_seconds: int = Field(
        default=300,
        ge=1,
        le=3600,
        description="How far a webhook's signed timestamp may be from now, either way, in "
        "seconds (at least 1: the check cannot be turned off).",
    )
    stripe_price_pro: str | None = Field(
        default=None, description="Stripe price id of the Pro plan (monthly)."
    )
    stripe_price_team: str | None = Field(
        default=None, description="Stripe price id of the Team plan (monthly)."
    )
    stripe_meter_deploy_minutes: str = Field(
        default="kombify_deploy_minutes",
        min_length=1,
        max_length=100,
        description="Event name of the Stripe meter that bills deploy minutes.",
    )
    stripe_meter_api_calls: str = Field(
        default="kombify_api_calls",
        min_length=1,
        max_length=100,
        description="Event name of the Stripe meter that bills API calls.",
    )
    usage_flush_seconds: int = Field(
        default=60,
        ge=1,
        le=240,
        description="How often an API process adds the API calls it counted to the database, "
        "in seconds (at most 240: counts must be stored before their hour is reported).",
    )
    billing_grace_days: int = Field(
        default=7,
        ge=1,
        le=60,
        description="Days an organisation keeps its plan after a failed payment before it is "
        "moved to Free.",
    )
    tools: str = Field(
        default="",
        description="Tools this portal fronts at /v1/tools/<name>/…, as name=URL pairs "
        "separated by commas, e.g. `stack=http://127.0.0.1:8421`.",
    )

    @field_validator("sso_audiences")
    @classmethod
    def _known_audiences(cls, value: str) -> str:
        from kombify.identity.config import parse_names

        parse_names(value, variable="KOMBIFY_SSO_AUDIENCES")
        return value

    @field_validator("sso_audience")
    @classmethod
    def _audience_name(cls, value: str | None) -> str | None:
        from kombify.identity.config import parse_names

        if value is not None:
            parse_names(value, variable="KOMBIFY_SSO_AUDIENCE")
        return value

    @field_validator("sso_trusted_issuer")
    @classmethod
    def _issuer_url(cls, value: str | None) -> str | None:
        from kombify.identity.config import check_url

        return None if value is None else check_url(value, variable="KOMBIFY_SSO_TRUSTED_ISSUER")

    @field_validator("tools")
    @classmethod
    def _tool_urls(cls, value: str) -> str:
        from kombify.identity.config import parse_tools

        parse_tools(value)
        return value

    @model_validator(mode="after")
    def _sso_consistent(self) -> Settings:
        if (self.sso_trusted_issuer is None) != (self.sso_audience is None):
            raise ValueError(
                "KOMBIFY_SSO_TRUSTED_ISSUER and KOMBIFY_SSO_AUDIENCE: set both (to accept a "
                "portal's SSO tokens) or neither"
            )
        if self.sso_key_grace_minutes <= self.sso_token_minutes:
            raise ValueError(
                "KOMBIFY_SSO_KEY_GRACE_MINUTES: expected more than KOMBIFY_SSO_TOKEN_MINUTES "
                "(a retired key must outlive every token it signed)"
            )
        return self

    @model_validator(mode="after")
    def _billing_needs_webhook_secret(self) -> Settings:
        if self.stripe_api_key is not None and self.stripe_webhook_secret is None:
            raise ValueError(
                "KOMBIFY_STRIPE_WEBHOOK_SECRET: expected the webhook endpoint's signing secret "
                "(whsec_…) when KOMBIFY_STRIPE_API_KEY is set (webhooks could not be verified)"
            )
        return self

    @property
    def billing_enabled(self) -> bool:
        """Billing is on when a Stripe key is set; off, every entitlement is granted."""
        return self.stripe_api_key is not None

    @property
    def tool_urls(self) -> dict[str, str]:
        """The tools this portal fronts, name to base URL (KOMBIFY_TOOLS)."""
        from kombify.identity.config import parse_tools

        return parse_tools(self.tools)

    @property
    def sso_audience_names(self) -> tuple[str, ...]:
        """Every audience this portal issues SSO tokens for."""
        from kombify.identity.config import parse_names

        names = parse_names(self.sso_audiences, variable="KOMBIFY_SSO_AUDIENCES")
        return tuple(dict.fromkeys([*names, *self.tool_urls]))
    oidc_providers: SecretStr | None = Field(
        default=None,
        description='OpenID Connect and GitHub login providers as JSON: {"name": {"issuer": '
        '"https://…", "client_id": "…", "client_secret": "…", "scopes": "openid email profile"}}; '
        '{"kind": "github", "client_id", "client_secret"} for GitHub. The redirect URI to register '
        "is PUBLIC_URL/v1/auth/oidc/<name>/callback. Holds secrets: never shown (docs/oidc.md).",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="CLI: an API key (kfk_…) to send instead of the `kombify login` session "
        "or the admin token. A secret: never shown.",
    )
    org: str | None = Field(
        default=None,
        description="CLI: the organisation (slug) commands act in, as `--org` does; default: "
        "your home organisation.",
    )

    @field_validator("notify_urls")
    @classmethod
    def _known_notify_urls(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        from kombify.notify import check_urls

        bad = check_urls(value.get_secret_value())
        if bad:
            # The message names entries masked only: a token must not reach a log or terminal.
            raise ValueError(
                "KOMBIFY_NOTIFY_URLS: not a notification URL Apprise knows: "
                + ", ".join(f"`{entry}`" for entry in bad)
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ValueError(
                "KOMBIFY_REDIS_URL: expected a URL starting with redis://, rediss:// or unix://"
            )
        return value

    @field_validator("rate_limits")
    @classmethod
    def _rate_limits(cls, value: str) -> str:
        from kombify.gateway.rules import parse_rules

        parse_rules(value)  # raises ValueError naming the entry at fault
        return value

    @field_validator("cors_origins")
    @classmethod
    def _cors_origins(cls, value: str | None) -> str | None:
        from kombify.gateway.cors import parse_origins

        if value is not None:
            parse_origins(value)
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url_form(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        from kombify.accounts.outbox import smtp_server

        try:
            smtp_server(value.get_secret_value())
        except ConfigError as exc:
            raise ValueError(exc.message) from None  # the message never repeats the URL
        return value

    @field_validator("oidc_providers")
    @classmethod
    def _valid_oidc_providers(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            from kombify.identity.oidc_config import parse_providers

            parse_providers(value.get_secret_value())  # its messages never hold a secret
        return value

    @property
    def oidc_provider_map(self) -> dict[str, Any]:
        """The login providers by name (kombify.identity.oidc_config.Provider values)."""
        from kombify.identity.oidc_config import parse_providers

        if self.oidc_providers is None:
            return {}
        return parse_providers(self.oidc_providers.get_secret_value())

    @field_validator("org")
    @classmethod
    def _org_slug(cls, value: str | None) -> str | None:
        if not value:
            return None
        from kombify.names import InvalidName, check_name

        try:
            return check_name(value, what="organisation")
        except InvalidName as exc:
            raise ValueError(f"KOMBIFY_ORG: {exc.message}") from None

    @property
    def notify_url_list(self) -> list[str]:
        """The notification URLs, one per entry of ``KOMBIFY_NOTIFY_URLS`` ([] when unset)."""
        from kombify.notify import split_urls

        return split_urls(self.notify_urls.get_secret_value()) if self.notify_urls else []

    @property
    def rate_limit_rules(self) -> dict[str, Rule]:
        """The rate limit rule of each route class (``KOMBIFY_RATE_LIMITS`` over defaults)."""
        from kombify.gateway.rules import parse_rules

        return parse_rules(self.rate_limits)

    @property
    def cors_origin_list(self) -> list[str]:
        """The origins allowed cross-origin access ([] when unset: none)."""
        from kombify.gateway.cors import parse_origins

        return parse_origins(self.cors_origins) if self.cors_origins else []

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file under ``home``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'kombify.db'}"

    @property
    def resolved_public_url(self) -> str:
        """Where people reach kombify, without a trailing slash."""
        return (self.public_url or self.resolved_api_url).rstrip("/")

    @property
    def resolved_api_url(self) -> str:
        """The API base URL the CLI should call."""
        return self.api_url or f"http://{self.api_host}:{self.api_port}"

    def ensure_home(self) -> Path:
        """``home``, created with mode 0700, or tightened to it (it is kombify's alone)."""
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.home.stat().st_mode & 0o077:
            self.home.chmod(0o700)
        return self.home

    @property
    def run_dir(self) -> Path:
        """Where pid files and logs of the processes kombify starts live."""
        return self.home / "run"


def _setting_problem(error: Any) -> str:
    message = str(error.get("msg", "")).removeprefix("Value error, ")
    variable = "KOMBIFY_" + "_".join(str(part) for part in error.get("loc", ())).upper()
    return message if message.startswith(variable) else f"{variable}: {message}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests call ``get_settings.cache_clear()``).

    ``KOMBIFY_HOME`` exists (mode 0700) once this returned.

    Raises:
        ConfigError: A variable has a value kombify cannot use (one line per variable).
    """
    try:
        settings = Settings()
    except ValidationError as exc:
        # pydantic's own text repeats each input value; only the messages are shown.
        raise ConfigError("; ".join(_setting_problem(e) for e in exc.errors())) from None
    settings.ensure_home()
    return settings
