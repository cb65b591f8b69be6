"""The configuration contract (docs/contract.md §3): what loads, what is refused, and how
it is said."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from watcher.config import (
    NOTIFICATION_KINDS,
    SECTIONS,
    Config,
    Secret,
    config_from_env,
    default_config_path,
    describe,
    load_config,
)
from watcher.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"

# The example of docs/contract.md §3, verbatim.
PRODUCT_EXAMPLE = """\
[keb]
url = "https://kyma-env-broker.example.com"   # required
token = "${KEB_TOKEN}"       # bearer token; ${VAR} is read from the environment
# token_file = "/var/run/secrets/keb/token"  # re-read when it changes and after a 401
# token_command = "kcp-token"               # its stdout is the token; cached until the JWT expires
timeout = "30s"

[storage]
path = "watcher.db"          # SQLite file, created on first use

[poll]
interval = "60s"             # or: cron = "*/2 * * * *"
jitter = "5s"

[slack]
token = "${SLACK_BOT_TOKEN}"  # bot token: living cards, updates, threads
channel = "#kyma-upgrades"
# webhook_url = "${SLACK_WEBHOOK_URL}"   # alternative: post-only milestones
# base_url = "https://slack.com/api/"    # Enterprise proxies and tests

[templates]
# dir = "./my-templates"     # overrides packaged templates file by file

# [service]
# listen = "127.0.0.1:9464"  # /healthz, /readyz, /metrics for `watcher run`
"""

KEB_SECRET = "keb-S3CRET-token-value"
SLACK_SECRET = "xoxb-S3CRET-slack"
HOOK_SECRET = "https://hooks.slack.com/services/T000/B000/S3CRETHOOK"
SECRETS = (KEB_SECRET, SLACK_SECRET, "S3CRET")
ENV = {"KEB_TOKEN": KEB_SECRET, "SLACK_BOT_TOKEN": SLACK_SECRET, "HOME": "/home/op"}
MINIMAL = '[keb]\nurl = "https://keb.example.com"\n'


def write(directory: Path, text: str, name: str = "watcher.toml") -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def field_default(spec: dataclasses.Field[Any]) -> Any:
    if spec.default_factory is not dataclasses.MISSING:
        return spec.default_factory()
    return spec.default


def complete(snippet: str) -> str:
    """A whole file from a table snippet: ``keb.url`` is added unless the snippet sets it.

    A snippet starting with ``!`` is a whole file already.
    """
    if snippet.startswith("!"):
        return snippet[1:]
    if snippet.startswith("[keb]\n"):
        return snippet if "url =" in snippet else snippet.replace("[keb]\n", MINIMAL, 1)
    return MINIMAL + snippet


def load(directory: Path, text: str, env: dict[str, str] | None = None, **kw: Any) -> Config:
    return load_config(write(directory, text), ENV if env is None else env, **kw)


def refusal(directory: Path, text: str, env: dict[str, str] | None = None, **kw: Any) -> str:
    """The one-line message of the ConfigError that loading ``text`` raises."""
    with pytest.raises(ConfigError) as caught:
        load(directory, text, env, **kw)
    message = str(caught.value)
    assert "\n" not in message
    assert caught.value.exit_code == 2
    return message


# -- what loads ------------------------------------------------------------------------------


def test_the_product_example_loads(tmp_path: Path) -> None:
    config = load(tmp_path, PRODUCT_EXAMPLE)
    assert config.keb.url == "https://kyma-env-broker.example.com"
    assert config.keb.token == Secret(KEB_SECRET)
    assert config.keb.token is not None
    assert config.keb.token.reveal() == KEB_SECRET
    assert config.keb.timeout == 30.0
    assert config.storage.path == tmp_path / "watcher.db"
    assert (config.poll.interval, config.poll.jitter, config.poll.cron) == (60.0, 5.0, None)
    assert config.slack.token == Secret(SLACK_SECRET)
    assert config.slack.channel == "#kyma-upgrades"
    assert config.slack.webhook_url is None
    assert config.templates.dir is None
    assert config.service.listen is None
    assert config.source == tmp_path / "watcher.toml"


@pytest.mark.parametrize(
    ("text", "attribute", "expected"),
    [
        ('[keb]\nurl = "http://127.0.0.1:8080/"', "keb.url", "http://127.0.0.1:8080"),
        ('[keb]\nurl = "https://gw.example.com/keb///"', "keb.url", "https://gw.example.com/keb"),
        ("[keb]\ntimeout = 2.5", "keb.timeout", 2.5),
        ('[keb]\ntoken_command = "kcp-token --raw"', "keb.token_command", "kcp-token --raw"),
        ("[keb]\nconcurrency = 1", "keb.concurrency", 1),
        ('[storage]\nretention = "0s"', "storage.retention", 0.0),
        ('[storage]\nretention = "90d"', "storage.retention", 90 * 86400.0),
        ('[poll]\ninterval = "1h30m"', "poll.interval", 5400.0),
        ('[poll]\ninterval = "500ms"', "poll.interval", 0.5),
        ("[poll]\ninterval = 45", "poll.interval", 45.0),
        ('[poll]\ncron = "*/2 * * * *"', "poll.cron", "*/2 * * * *"),
        ('[poll]\ncron = "*/2 * * * *"', "poll.interval", 60.0),
        ('[poll]\ncron = "0 6 * * mon-fri"', "poll.cron", "0 6 * * mon-fri"),
        ('[poll]\njitter = "0s"', "poll.jitter", 0.0),
        ("[poll]\ndiscover = true", "poll.discover", True),
        (
            '[poll]\ndiscover_states = ["pending", "inprogress", "pending"]',
            "poll.discover_states",
            ("pending", "in progress"),
        ),
        ('[poll]\ndiscover_types = ["upgradeCluster"]', "poll.discover_types", ("upgradeCluster",)),
        ('[slack]\ntoken = "test-token"\nchannel = "C0123ABC"', "slack.channel", "C0123ABC"),
        (
            '[slack]\ntoken = "test-token"\nchannel = "kyma_upgrades.eu"',
            "slack.channel",
            "kyma_upgrades.eu",
        ),
        (
            '[slack]\nwebhook_url = "http://127.0.0.1:9/hook"',
            "slack.webhook_url",
            Secret("http://127.0.0.1:9/hook"),
        ),
        (
            '[slack]\nbase_url = "http://127.0.0.1:9/api"',
            "slack.base_url",
            "http://127.0.0.1:9/api/",
        ),
        ('[slack]\ngive_up_after = "2h"', "slack.give_up_after", 7200.0),
        ('[service]\nlisten = "127.0.0.1:9464"', "service.listen", "127.0.0.1:9464"),
        ('[service]\nlisten = "[::1]:9464"', "service.listen", "[::1]:9464"),
        ('[service]\nlisten = "0.0.0.0:1"', "service.listen", "0.0.0.0:1"),
        ('[service]\nlisten = "watcher.local:65535"', "service.listen", "watcher.local:65535"),
        ("[service]\nready_after_intervals = 2", "service.ready_after_intervals", 2.0),
        ("[service]\nready_after_intervals = 1.5", "service.ready_after_intervals", 1.5),
    ],
)
def test_values_are_read_and_normalised(
    tmp_path: Path, text: str, attribute: str, expected: object
) -> None:
    config = load(tmp_path, complete(text))
    section, name = attribute.split(".")
    assert getattr(getattr(config, section), name) == expected


def test_routes_map_notification_kinds_to_channels(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        MINIMAL + '[slack]\ntoken = "test-token"\nchannel = "#a"\n'
        '[slack.routes]\nfailure_digest = "#b"\nfinished = "${ROUTE}"\n',
        {"ROUTE": "C0999XYZ"},
    )
    assert dict(config.slack.routes) == {"failure_digest": "#b", "finished": "C0999XYZ"}
    with pytest.raises(TypeError):
        config.slack.routes["progress"] = "#c"  # type: ignore[index]


def test_defaults_fill_every_missing_key(tmp_path: Path) -> None:
    config = load(tmp_path, MINIMAL)
    for name, cls in SECTIONS.items():
        for spec in dataclasses.fields(cls):
            if spec.name in ("url", "path"):
                continue
            default = field_default(spec)
            assert getattr(getattr(config, name), spec.name) == default, f"{name}.{spec.name}"


def test_sections_are_the_fields_of_config() -> None:
    names = [spec.name for spec in dataclasses.fields(Config)]
    assert names == [*SECTIONS, "source", "origins", "unresolved"]
    for name, cls in SECTIONS.items():
        assert Config.__dataclass_fields__[name].type == cls.__name__


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load(tmp_path, MINIMAL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.poll.interval = 1.0  # type: ignore[misc]


# -- what is refused, and how it is said ------------------------------------------------------

REFUSALS = [
    # unknown names
    ('[poll]\nintervall = "5m"', "{file}: poll.intervall: unknown key (did you mean 'interval'?)"),
    ("[pol]\n", "{file}: pol: unknown section (did you mean 'poll'?)"),
    ('!url = "https://x"\n' + MINIMAL, "{file}: url: unknown key (did you mean 'keb.url'?)"),
    ('[poll]\nchannel = "#a"', "{file}: poll.channel: unknown key (did you mean 'slack.channel'?)"),
    ("[poll]\nfoo = 1", "{file}: poll.foo: unknown key"),
    ("[nothing]\n", "{file}: nothing: unknown section"),
    ("!poll = 5\n" + MINIMAL, "{file}: poll: expected a table [poll], got an integer"),
    # missing and mistyped
    ("![poll]\n", "{file}: keb.url: required key missing"),
    ("!", "{file}: keb.url: required key missing"),
    ("[keb]\nurl = 5", "{file}: keb.url: expected a string, got an integer"),
    ('[keb]\nurl = ""', "{file}: keb.url: must not be empty"),
    (
        "[keb]\ntimeout = [1]",
        "{file}: keb.timeout: expected a duration string or number, got a list",
    ),
    (
        "[keb]\ntimeout = 1979-05-27",
        "{file}: keb.timeout: expected a duration string or number, got a date/time",
    ),
    ("[keb]\nconcurrency = true", "{file}: keb.concurrency: expected an integer, got a boolean"),
    ("[keb]\nretries = 1.5", "{file}: keb.retries: expected an integer, got a float"),
    ("[keb]\nretries = 0", "{file}: keb.retries: must be more than 0, got 0"),
    ("[keb]\nconcurrency = -2", "{file}: keb.concurrency: must be more than 0, got -2"),
    (
        "[slack]\nmax_attempts = 8",
        "{file}: slack.max_attempts: no longer supported: notifications give up on time, not on "
        'a count; remove it and set slack.give_up_after (a duration, default "24h") if needed',
    ),
    ("[poll]\nconcurrency = '4'", "{file}: poll.concurrency: expected an integer, got a string"),
    ('[poll]\ndiscover = "yes"', "{file}: poll.discover: expected true or false, got a string"),
    ("[keb]\ntoken = 123", "{file}: keb.token: expected a string, got an integer"),
    ('[keb]\ntoken = ""', "{file}: keb.token: must not be empty"),
    ('[storage]\npath = ""', "{file}: storage.path: must not be empty"),
    ("[templates]\ndir = false", "{file}: templates.dir: expected a string, got a boolean"),
    (
        '[service]\nready_after_intervals = "3"',
        "{file}: service.ready_after_intervals: expected a number, got a string",
    ),
    (
        "[service]\nready_after_intervals = 0",
        "{file}: service.ready_after_intervals: must be more than 0, got 0",
    ),
    (
        "[service]\nready_after_intervals = inf",
        "{file}: service.ready_after_intervals: must be more than 0, got inf",
    ),
    # durations
    (
        '[poll]\ninterval = "5 minutes"',
        "{file}: poll.interval: bad duration '5 minutes' (use 30s, 5m, 2h, 0s or seconds)",
    ),
    ('[poll]\njitter = "-5s"', "{file}: poll.jitter: bad duration '-5s' (must not be negative)"),
    (
        "[poll]\nalert_after = -1",
        "{file}: poll.alert_after: bad duration -1 (must not be negative)",
    ),
    ('[poll]\ninterval = "0s"', "{file}: poll.interval: must be more than 0s, got '0s'"),
    ("[poll]\ninterval = 0", "{file}: poll.interval: must be more than 0s, got 0"),
    ('[keb]\ntimeout = "0s"', "{file}: keb.timeout: must be more than 0s, got '0s'"),
    # cron
    (
        '[poll]\ninterval = "60s"\ncron = "*/2 * * * *"',
        "{file}: poll.cron: cannot be combined with poll.interval (set one)",
    ),
    (
        '[poll]\ncron = "*/2 * * *"',
        (
            "{file}: poll.cron: bad cron expression '*/2 * * *' (Wrong number of fields; got 4, "
            "expected 5)"
        ),
    ),
    (
        '[poll]\ncron = "0 */2 * * * *"',
        (
            "{file}: poll.cron: bad cron expression '0 */2 * * * *' (Wrong number of fields; got "
            "6, expected 5)"
        ),
    ),
    (
        '[poll]\ncron = "61 * * * *"',
        (
            "{file}: poll.cron: bad cron expression '61 * * * *' (Error validating expression "
            "'61': the last value (61) is higher than the maximum value (59))"
        ),
    ),
    (
        '[poll]\ncron = "@daily"',
        (
            "{file}: poll.cron: bad cron expression '@daily' (Wrong number of fields; got 1, "
            "expected 5)"
        ),
    ),
    # discovery filters
    (
        '[poll]\ndiscover_states = "pending"',
        "{file}: poll.discover_states: expected a list of strings, got a string",
    ),
    (
        "[poll]\ndiscover_states = [1]",
        "{file}: poll.discover_states: expected a list of strings, got an integer in it",
    ),
    (
        '[poll]\ndiscover_states = ["in-progress"]',
        "{file}: poll.discover_states: unknown state 'in-progress' (did you mean 'in progress'?)",
    ),
    (
        '[poll]\ndiscover_states = ["zzz"]',
        (
            "{file}: poll.discover_states: unknown state 'zzz' (known: pending, in progress, "
            "canceling, retrying, succeeded, failed, canceled)"
        ),
    ),
    (
        '[poll]\ndiscover_types = ["upgradekyma"]',
        (
            "{file}: poll.discover_types: unknown orchestration type 'upgradekyma' (did you mean "
            "'upgradeKyma'?)"
        ),
    ),
    # keb.url and the token sources
    (
        '[keb]\nurl = "ftp://keb.example.com"',
        "{file}: keb.url: expected an http(s) URL with a host, got 'ftp://keb.example.com'",
    ),
    (
        '[keb]\nurl = "https://"',
        "{file}: keb.url: expected an http(s) URL with a host, got 'https://'",
    ),
    (
        '[keb]\nurl = "keb.example.com"',
        "{file}: keb.url: expected an http(s) URL with a host, got 'keb.example.com'",
    ),
    (
        '[keb]\nurl = "https://keb example.com"',
        "{file}: keb.url: expected an http(s) URL with a host, got 'https://keb example.com'",
    ),
    (
        '[keb]\nurl = "https://keb.example.com:99999"',
        "{file}: keb.url: expected an http(s) URL with a host, got 'https://keb.example.com:99999'",
    ),
    (
        '[keb]\nurl = "https://keb.example.com/?a=1"',
        "{file}: keb.url: must not have a query or fragment, got 'https://keb.example.com/?a=1'",
    ),
    (
        '[keb]\ntoken = "test-token"\ntoken_file = "f"',
        (
            "{file}: keb.token_file: cannot be combined with keb.token (set one of keb.token, "
            "keb.token_file, keb.token_command)"
        ),
    ),
    (
        '[keb]\ntoken_file = "f"\ntoken_command = "c"',
        (
            "{file}: keb.token_command: cannot be combined with keb.token_file (set one of "
            "keb.token, keb.token_file, keb.token_command)"
        ),
    ),
    # slack
    (
        '[slack]\ntoken = "test-token"\nchannel = "#a"\nwebhook_url = "https://h.example.com/x"',
        "{file}: slack.webhook_url: cannot be combined with slack.token (bot token or webhook)",
    ),
    (
        '[slack]\ntoken = "test-token"',
        "{file}: slack.channel: required key missing (slack.token is set)",
    ),
    (
        '[slack]\nchannel = "#a"',
        "{file}: slack.channel: only used with slack.token (a webhook has its own channel)",
    ),
    (
        '[slack]\nwebhook_url = "https://h.example.com/x"\nchannel = "#a"',
        "{file}: slack.channel: only used with slack.token (a webhook has its own channel)",
    ),
    (
        '[slack.routes]\nfinished = "#a"',
        "{file}: slack.routes: only used with slack.token (a webhook has its own channel)",
    ),
    (
        '[slack]\ntoken = "test-token"\nchannel = "kyma upgrades"',
        (
            "{file}: slack.channel: bad channel 'kyma upgrades' (a name like '#kyma-upgrades' or "
            "an ID like 'C0123ABC')"
        ),
    ),
    (
        '[slack]\ntoken = "test-token"\nchannel = "#Kyma-Upgrades"',
        "{file}: slack.channel: bad channel '#Kyma-Upgrades' (Slack channel names are lowercase)",
    ),
    (
        '[slack]\ntoken = "test-token"\nchannel = "@someone"',
        (
            "{file}: slack.channel: bad channel '@someone' (a name like '#kyma-upgrades' or an "
            "ID like 'C0123ABC')"
        ),
    ),
    (
        '[slack]\ntoken = "test-token"\nchannel = "#a"\nroutes = ["#b"]',
        "{file}: slack.routes: expected a table of kind = channel, got a list",
    ),
    (
        '[slack]\ntoken = "test-token"\nchannel = "#a"\n[slack.routes]\nfinsihed = "#b"',
        "{file}: slack.routes.finsihed: unknown notification kind (did you mean 'finished'?)",
    ),
    (
        '[slack]\ntoken = "test-token"\nchannel = "#a"\n[slack.routes]\nweekly = "#b"',
        "{file}: slack.routes.weekly: unknown notification kind (known: "
        + ", ".join(NOTIFICATION_KINDS)
        + ")",
    ),
    (
        '[slack]\ntoken = "test-token"\nchannel = "#a"\n[slack.routes]\nprogress = "# b"',
        (
            "{file}: slack.routes.progress: bad channel '# b' (a name like '#kyma-upgrades' or "
            "an ID like 'C0123ABC')"
        ),
    ),
    (
        '[slack]\ntoken = "test-token"\nchannel = "#a"\n[slack.routes]\nprogress = 7',
        "{file}: slack.routes.progress: expected a string, got an integer",
    ),
    (
        '[slack]\nbase_url = "slack.com/api"',
        "{file}: slack.base_url: expected an http(s) URL with a host, got 'slack.com/api'",
    ),
    # service.listen
    (
        '[service]\nlisten = "9464"',
        (
            "{file}: service.listen: bad address '9464' (expected host:port, e.g. "
            "127.0.0.1:9464, or 0.0.0.0:9464 for every interface)"
        ),
    ),
    (
        '[service]\nlisten = ":9464"',
        (
            "{file}: service.listen: bad address ':9464' (expected host:port, e.g. "
            "127.0.0.1:9464, or 0.0.0.0:9464 for every interface)"
        ),
    ),
    (
        '[service]\nlisten = "localhost:0"',
        (
            "{file}: service.listen: bad address 'localhost:0' (the port must be a number from 1 "
            "to 65535)"
        ),
    ),
    (
        '[service]\nlisten = "localhost:65536"',
        (
            "{file}: service.listen: bad address 'localhost:65536' (the port must be a number "
            "from 1 to 65535)"
        ),
    ),
    (
        '[service]\nlisten = "localhost:http"',
        (
            "{file}: service.listen: bad address 'localhost:http' (the port must be a number "
            "from 1 to 65535)"
        ),
    ),
    (
        '[service]\nlisten = "::1:9464"',
        (
            "{file}: service.listen: bad address '::1:9464' (write an IPv6 address in brackets, "
            "e.g. [::1]:9464)"
        ),
    ),
    (
        '[service]\nlisten = "[zz]:9464"',
        "{file}: service.listen: bad address '[zz]:9464' (bad IPv6 address in brackets)",
    ),
    (
        '[service]\nlisten = "bad_host!:9464"',
        "{file}: service.listen: bad address 'bad_host!:9464' (bad host name)",
    ),
    # ${VAR}
    (
        '[keb]\ntoken = "${KEB_TOKN}"',
        "{file}: keb.token: ${KEB_TOKN} names an unset environment variable",
    ),
    (
        '[slack]\ntoken = "Bearer-${UNSET_ONE}-y"',
        "{file}: slack.token: ${UNSET_ONE} names an unset environment variable",
    ),
    (
        '[poll]\ndiscover_states = ["${STATE}"]',
        "{file}: poll.discover_states: ${STATE} names an unset environment variable",
    ),
    (
        '[slack.routes]\nfinished = "${CH}"',
        "{file}: slack.routes.finished: ${CH} names an unset environment variable",
    ),
    (
        '[keb]\ntoken_command = "echo ${HOME"',
        "{file}: keb.token_command: unterminated '${' (write '$${' for a literal '${')",
    ),
    (
        '[keb]\ntoken_command = "echo ${1X}"',
        "{file}: keb.token_command: bad '${...}' reference (a variable name is A-Z, 0-9, _)",
    ),
    (
        '[keb]\ntoken_command = "echo ${}"',
        "{file}: keb.token_command: bad '${...}' reference (a variable name is A-Z, 0-9, _)",
    ),
    # TOML itself
    ("[keb]\nurl = \n", "{file}: line 2: invalid TOML: Invalid value"),
    (
        '[keb]\nurl = "https://a"\nurl = "https://b"\n',
        "{file}: line 3: invalid TOML: Cannot overwrite a value",
    ),
    ('[keb]\nurl = "https://a', "{file}: line 2: invalid TOML: Unterminated string"),
]


@pytest.mark.parametrize(("text", "message"), REFUSALS)
def test_refusals_name_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    assert refusal(tmp_path, complete(text)) == message.replace(
        "{file}", str(tmp_path / "watcher.toml")
    )


def test_the_message_names_the_file_as_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, MINIMAL + '[poll]\nintervall = "5m"\n')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_config(Path("watcher.toml"), ENV)
    assert (
        str(caught.value) == "watcher.toml: poll.intervall: unknown key (did you mean 'interval'?)"
    )


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "watcher.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(missing, ENV)
    assert str(caught.value) == f"{missing}: cannot read: No such file or directory"


def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, ENV)
    assert str(caught.value) == f"{tmp_path}: cannot read: Is a directory"


def test_a_file_that_is_not_utf8_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "watcher.toml"
    path.write_bytes(b'[keb]\nurl = "https://a"\n# caf\xe9\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, ENV)
    assert str(caught.value) == f"{path}: line 3: invalid TOML: not UTF-8 text"


def test_a_byte_order_mark_is_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "watcher.toml"
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())
    assert load_config(path, ENV).keb.url == "https://keb.example.com"


# -- secrets ----------------------------------------------------------------------------------


def test_secret_hides_its_value() -> None:
    secret = Secret(KEB_SECRET)
    shown = [str(secret), repr(secret), f"{secret}", f"{secret!r}", f"{secret:>40}", format(secret)]
    assert shown == ["***"] * 6
    assert secret.reveal() == KEB_SECRET
    assert secret == Secret(KEB_SECRET)
    assert secret != Secret("other")
    assert secret != KEB_SECRET
    assert hash(secret) == hash(Secret(KEB_SECRET))
    assert bool(secret)
    assert not Secret("")


SECRET_FILE = f"""\
[keb]
url = "https://keb.example.com"
token = "{KEB_SECRET}"
[slack]
webhook_url = "${{HOOK}}"
"""


def test_secrets_are_absent_from_repr_and_describe(tmp_path: Path) -> None:
    for text, env in [
        (SECRET_FILE, {"HOOK": HOOK_SECRET}),
        (PRODUCT_EXAMPLE, ENV),
        (MINIMAL + f'[slack]\ntoken = "{SLACK_SECRET}"\nchannel = "#a"\n', {}),
        (PRODUCT_EXAMPLE, {**ENV, "KEB_URL": "https://k", "KEB_TOKEN": "S3CRET-env"}),
    ]:
        config = load(tmp_path, text, env, env_overrides=True)
        shown = "\n".join([repr(config), str(config), *describe(config)])
        for secret in (*SECRETS, HOOK_SECRET):
            assert secret not in shown
        assert "***" in shown


@pytest.mark.parametrize(
    ("text", "env"),
    [
        # Every secret key with a bad value, literal and from the environment.
        (MINIMAL + '[slack]\nwebhook_url = "S3CRET-not-a-url"', {}),
        (MINIMAL + '[slack]\nwebhook_url = "${HOOK}"', {"HOOK": "ftp://S3CRET"}),
        (MINIMAL + '[slack]\nwebhook_url = "${HOOK}"', {"HOOK": HOOK_SECRET + "?x=S3CRET"}),
        (MINIMAL + '[slack]\nwebhook_url = "https://S3CRET:99999/"', {}),
        (f'[keb]\nurl = "https://k"\ntoken = "{KEB_SECRET}"\ntoken_file = "f"', {}),
        (f'[keb]\nurl = "https://k"\ntoken = "{KEB_SECRET}"\ntimeout = "x"', {}),
        (MINIMAL + f'[slack]\ntoken = "{SLACK_SECRET}"', {}),
        (MINIMAL + f'[slack]\ntoken = "{SLACK_SECRET}"\nchannel = "Bad Channel"', {}),
        (
            MINIMAL + '[slack]\ntoken = "${T}"\nwebhook_url = "${H}"',
            {"T": "S3CRET", "H": HOOK_SECRET},
        ),
        # A password in a URL is not shown either.
        ('[keb]\nurl = "https://user:S3CRET@keb.example.com/?q=1"', {}),
        ('[keb]\nurl = "ftp://user:S3CRET@keb.example.com"', {}),
        ('[keb]\nurl = "https://user:S3CRET@[::1"', {}),
    ],
)
def test_secrets_are_absent_from_error_messages(
    tmp_path: Path, text: str, env: dict[str, str]
) -> None:
    message = refusal(tmp_path, text, env)
    assert str(tmp_path) in message
    for secret in (*SECRETS, HOOK_SECRET):
        assert secret not in message


def test_a_url_with_credentials_is_refused_without_showing_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, '[keb]\nurl = "https://user:S3CRET@keb.example.com"\n')
    assert str(caught.value).endswith(
        "keb.url: must not contain credentials (user:password@); use a token setting instead"
    )
    assert "S3CRET" not in str(caught.value)


def test_environment_values_of_secret_keys_are_secrets(tmp_path: Path) -> None:
    config = load(tmp_path, SECRET_FILE, {"HOOK": HOOK_SECRET})
    assert isinstance(config.slack.webhook_url, Secret)
    assert config.slack.webhook_url.reveal() == HOOK_SECRET


# -- ${VAR} -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "env", "value"),
    [
        ("Bearer-${X}-y", {"X": "abc"}, "Bearer-abc-y"),
        ("${X}${Y}", {"X": "a", "Y": "b"}, "ab"),
        ("$${X}", {}, "${X}"),
        ("echo $${HOME} ${X}", {"X": "x"}, "echo ${HOME} x"),
        ("a-$${X}-${Y}", {"Y": "yv"}, "a-${X}-yv"),
        ("$X and $ and $$ and {X}", {}, "$X and $ and $$ and {X}"),
        ("${X}", {"X": "${Y}"}, "${Y}"),  # substituted once: values are not re-read
        ("${X}", {"X": ""}, ""),
    ],
)
def test_variables_are_substituted_in_strings(
    tmp_path: Path, raw: str, env: dict[str, str], value: str
) -> None:
    text = MINIMAL + f'[templates]\ndir = "/t/{raw}"\n'
    config = load(tmp_path, text, env)
    assert config.templates.dir == Path(f"/t/{value}")


def test_variables_feed_every_kind_of_value(tmp_path: Path) -> None:
    text = """\
[keb]
url = "${URL}"
timeout = "${TIMEOUT}"
[poll]
discover_states = ["${STATE}", "failed"]
[slack]
token = "${T}"
channel = "${CH}"
"""
    env = {"URL": "https://k/", "TIMEOUT": "1m", "STATE": "pending", "T": "test-token", "CH": "#c"}
    config = load(tmp_path, text, env)
    assert config.keb.url == "https://k"
    assert config.keb.timeout == 60.0
    assert config.poll.discover_states == ("pending", "failed")
    assert config.slack.channel == "#c"


def test_an_empty_variable_in_a_secret_key_is_refused(tmp_path: Path) -> None:
    message = refusal(tmp_path, MINIMAL.replace("[keb]\n", '[keb]\ntoken = "${T}"\n'), {"T": ""})
    assert message == f"{tmp_path / 'watcher.toml'}: keb.token: must not be empty"


# -- the environment: overrides and no-file mode ----------------------------------------------


FILE_WITH_TOKEN = '[keb]\nurl = "https://file.example.com"\ntoken = "file-token"\n'


def test_env_overrides_win_over_the_file_when_enabled(tmp_path: Path) -> None:
    env = {"KEB_URL": "https://env.example.com/", "KEB_TOKEN": "env-token"}
    config = load(tmp_path, FILE_WITH_TOKEN, env, env_overrides=True)
    assert config.keb.url == "https://env.example.com"
    assert config.keb.token == Secret("env-token")
    assert config.source == tmp_path / "watcher.toml"
    lines = describe(config)
    assert any(re.match(r"keb\.url +=.*\(env KEB_URL, overrides the file\)", ln) for ln in lines)
    assert any(re.match(r"keb\.token += \*\*\* +\(env KEB_TOKEN", ln) for ln in lines)


def test_env_overrides_are_ignored_unless_enabled(tmp_path: Path) -> None:
    env = {"KEB_URL": "https://env.example.com", "KEB_TOKEN": "env-token"}
    config = load(tmp_path, FILE_WITH_TOKEN, env)
    assert config.keb.url == "https://file.example.com"
    assert config.keb.token == Secret("file-token")


@pytest.mark.parametrize(
    ("env", "url", "token"),
    [
        ({"KEB_URL": "https://env.example.com"}, "https://env.example.com", "file-token"),
        ({"KEB_TOKEN": "env-token"}, "https://file.example.com", "env-token"),
        ({"KEB_URL": "", "KEB_TOKEN": ""}, "https://file.example.com", "file-token"),
    ],
)
def test_each_override_applies_alone(
    tmp_path: Path, env: dict[str, str], url: str, token: str
) -> None:
    config = load(tmp_path, FILE_WITH_TOKEN, env, env_overrides=True)
    assert (config.keb.url, config.keb.token) == (url, Secret(token))


def test_keb_token_replaces_a_token_file_or_command(tmp_path: Path) -> None:
    for other in ('token_file = "/run/token"', 'token_command = "kcp-token"'):
        text = f'[keb]\nurl = "https://k"\n{other}\n'
        config = load(tmp_path, text, {"KEB_TOKEN": "env-token"}, env_overrides=True)
        assert config.keb.token == Secret("env-token")
        assert (config.keb.token_file, config.keb.token_command) == (None, None)
        assert any("ignored: KEB_TOKEN is set" in line for line in describe(config))


def test_keb_url_from_the_environment_makes_the_file_key_optional(tmp_path: Path) -> None:
    config = load(tmp_path, "[poll]\n", {"KEB_URL": "https://env"}, env_overrides=True)
    assert config.keb.url == "https://env"


def test_overridden_values_need_no_variables(tmp_path: Path) -> None:
    text = '[keb]\nurl = "${FILE_URL}"\ntoken_command = "get ${UNSET}"\n'
    env = {"KEB_URL": "https://env", "KEB_TOKEN": "env-token"}
    config = load(tmp_path, text, env, env_overrides=True)
    assert (config.keb.url, config.keb.token) == ("https://env", Secret("env-token"))
    message = refusal(tmp_path, text, {"KEB_URL": "https://env"}, env_overrides=True)
    assert message.endswith("keb.token_command: ${UNSET} names an unset environment variable")


def test_a_bad_override_names_the_variable(tmp_path: Path) -> None:
    env = {"KEB_URL": "ftp://env.example.com"}
    assert refusal(tmp_path, FILE_WITH_TOKEN, env, env_overrides=True) == (
        "KEB_URL: expected an http(s) URL with a host, got 'ftp://env.example.com'"
    )


def test_no_file_is_fine_with_keb_url_when_not_required(tmp_path: Path) -> None:
    env = {"KEB_URL": "https://env.example.com/", "KEB_TOKEN": KEB_SECRET}
    config = load_config(tmp_path / "watcher.toml", env, require_file=False)
    assert config.source is None
    assert config.keb.url == "https://env.example.com"
    assert config.keb.token == Secret(KEB_SECRET)
    assert config.slack.token is None
    assert config.storage.path.is_absolute()
    lines = describe(config)
    assert lines[0] == "config file: none (settings from the environment and defaults)"
    assert "environment variables used: KEB_TOKEN, KEB_URL" in lines
    assert KEB_SECRET not in "\n".join(lines)


def test_no_file_without_keb_url_is_refused_with_a_hint(tmp_path: Path) -> None:
    missing = tmp_path / "watcher.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(missing, {"KEB_TOKEN": "t"}, require_file=False)
    assert str(caught.value) == (
        f"{missing}: cannot read: No such file or directory (or set KEB_URL and KEB_TOKEN)"
    )


def test_no_file_is_refused_when_required(tmp_path: Path) -> None:
    missing = tmp_path / "watcher.toml"
    with pytest.raises(ConfigError, match=r"cannot read: No such file or directory$"):
        load_config(missing, {"KEB_URL": "https://k", "KEB_TOKEN": "t"})


def test_a_present_file_is_used_even_when_not_required(tmp_path: Path) -> None:
    env = {"KEB_URL": "https://env.example.com"}
    config = load(tmp_path, FILE_WITH_TOKEN, env, require_file=False)
    assert config.keb.url == "https://file.example.com"


def test_config_from_env() -> None:
    config = config_from_env({"KEB_URL": "http://127.0.0.1:8080"})
    assert (config.keb.url, config.keb.token, config.source) == (
        "http://127.0.0.1:8080",
        None,
        None,
    )
    with pytest.raises(ConfigError) as caught:
        config_from_env({"KEB_TOKEN": "t"})
    assert str(caught.value) == "KEB_URL: not set (needed when there is no config file)"
    with pytest.raises(ConfigError) as caught:
        config_from_env({"KEB_URL": "keb.example.com"})
    assert str(caught.value) == (
        "KEB_URL: expected an http(s) URL with a host, got 'keb.example.com'"
    )


def test_default_config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_config_path({}) == Path("watcher.toml")
    assert default_config_path({"WATCHER_CONFIG": ""}) == Path("watcher.toml")
    assert default_config_path({"WATCHER_CONFIG": "/etc/w.toml"}) == Path("/etc/w.toml")
    assert default_config_path({"WATCHER_CONFIG": "~/w.toml", "HOME": "/h"}) == Path("/h/w.toml")
    write(tmp_path / "etc", MINIMAL)
    monkeypatch.chdir(tmp_path)
    env = {"WATCHER_CONFIG": str(tmp_path / "etc" / "watcher.toml")}
    assert load_config(None, env).source == tmp_path / "etc" / "watcher.toml"
    write(tmp_path, '[keb]\nurl = "https://cwd"\n')
    assert load_config(None, {}).keb.url == "https://cwd"


# -- paths ------------------------------------------------------------------------------------


def test_relative_paths_are_resolved_against_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = """\
[keb]
url = "https://k"
token_file = "secrets/token"
[storage]
path = "data/w.db"
[templates]
dir = "../tpl"
"""
    write(tmp_path / "conf", text)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(Path("../conf/watcher.toml"), {})
    conf = tmp_path / "conf"
    assert config.keb.token_file == conf / "secrets/token"
    assert config.storage.path == conf / "data/w.db"
    assert config.templates.dir == tmp_path / "tpl"
    assert config.source == conf / "watcher.toml"
    assert all(p is not None and p.is_absolute() for p in (config.keb.token_file, config.source))


def test_the_default_database_lives_beside_the_file(tmp_path: Path) -> None:
    assert load(tmp_path / "conf", MINIMAL).storage.path == tmp_path / "conf" / "watcher.db"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("~/w.db", "/home/op/w.db"),
        ("~", "/home/op"),
        ("/var/lib/w.db", "/var/lib/w.db"),
        ("${HOME}/w.db", "/home/op/w.db"),
    ],
)
def test_home_and_absolute_paths(tmp_path: Path, raw: str, expected: str) -> None:
    config = load(tmp_path, MINIMAL + f'[storage]\npath = "{raw}"\n')
    assert config.storage.path == Path(expected)


# -- describe ---------------------------------------------------------------------------------


def test_describe_shows_every_setting_and_its_origin(tmp_path: Path) -> None:
    text = PRODUCT_EXAMPLE.replace('interval = "60s"', 'cron = "*/5 * * * *"')
    lines = describe(load(tmp_path, text))
    assert lines[0] == f"config file: {tmp_path / 'watcher.toml'}"
    assert lines[1] == "environment variables used: KEB_TOKEN, SLACK_BOT_TOKEN"
    keys = [line.split(" ", 1)[0] for line in lines[2:]]
    assert keys == [
        f"{name}.{spec.name}" for name, cls in SECTIONS.items() for spec in dataclasses.fields(cls)
    ]
    by_key = {line.split(" ", 1)[0]: re.sub(r"^\S+ +", "", line) for line in lines[2:]}
    assert by_key["keb.token"] == "= ***  (file, ${KEB_TOKEN})"
    assert by_key["keb.token_file"] == "= (not set)  (default)"
    assert by_key["keb.timeout"] == "= 30s  (file)"
    assert by_key["storage.retention"] == "= 30d  (default)"
    assert by_key["poll.interval"] == "= 1m  (default; unused: poll.cron is set)"
    assert by_key["poll.cron"] == "= */5 * * * *  (file)"
    assert by_key["poll.discover_states"] == "= (any)  (default)"
    assert by_key["slack.webhook_url"] == "= (not set)  (default)"
    assert by_key["slack.routes"] == "= (none)  (default)"
    assert by_key["service.ready_after_intervals"] == "= 3  (default)"


def test_describe_works_on_a_hand_built_config() -> None:
    config = dataclasses.replace(config_from_env({"KEB_URL": "https://k"}), origins={})
    lines = describe(config)
    assert lines[1] == "keb.url                       = https://k"
    assert lines[2] == "keb.token                     = (not set)"


# -- config.example.toml ----------------------------------------------------------------------

KEY_LINE = re.compile(r"^(?P<comment># ?)?(?P<key>[a-z_]+) = (?P<rest>.*)$")
SECTION_LINE = re.compile(r"^\[(?P<name>[a-z_.]+)\]$")
EXAMPLE_ENV = {
    "KEB_TOKEN": "keb-token",
    "SLACK_BOT_TOKEN": "xoxb-test",
    "SLACK_WEBHOOK_URL": "https://h/x",
    "WATCHER_DASHBOARD_TOKEN": "dashboard-token",
    "WATCHER_METRICS_TOKEN": "metrics-token",
}
# Keys that cannot be set together with another key: uncommenting one comments out the others.
EXCLUSIVE = {
    "keb.token_file": ("keb.token",),
    "keb.token_command": ("keb.token",),
    "poll.cron": ("poll.interval",),
    "slack.webhook_url": ("slack.token", "slack.channel", "slack.routes"),
}


def example_keys() -> list[tuple[int, str, bool]]:
    """(line index, dotted key, commented out) for each key line of the example."""
    section, found = "", []
    for index, line in enumerate(EXAMPLE.read_text(encoding="utf-8").splitlines()):
        if header := SECTION_LINE.match(line):
            section = header["name"]
        elif key := KEY_LINE.match(line):
            found.append((index, f"{section}.{key['key']}", bool(key["comment"])))
    return found


def test_the_example_loads_as_shipped() -> None:
    config = load_config(EXAMPLE, EXAMPLE_ENV)
    assert config.keb.url == "https://kyma-env-broker.example.com"
    assert config.slack.channel == "#kyma-upgrades"


def test_the_example_documents_every_field_once() -> None:
    documented = [key for _, key, _ in example_keys()]
    fields = [f"{n}.{spec.name}" for n, cls in SECTIONS.items() for spec in dataclasses.fields(cls)]
    assert sorted(documented) == sorted(fields)


def test_every_key_in_the_example_is_explained() -> None:
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    for index, key, _ in example_keys():
        line = lines[index].removeprefix("# ")
        value = tomllib.loads(line)  # the comment is TOML's, so the line must parse
        assert len(value) == 1, key
        assert re.search(r"\S  # \S", line), f"{key}: no explanation after the value"


@pytest.mark.parametrize("key", [key for _, key, commented in example_keys() if commented])
def test_every_commented_key_works_when_uncommented(tmp_path: Path, key: str) -> None:
    """Uncommenting a line gives a valid config; where the field has a default, it is that."""
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    keys = {k: (index, commented) for index, k, commented in example_keys()}
    index, _ = keys[key]
    lines[index] = lines[index].removeprefix("# ")
    for other in EXCLUSIVE.get(key, ()):
        other_index, other_commented = keys[other]
        if not other_commented:
            lines[other_index] = "# " + lines[other_index]
    section, name = key.split(".")
    if key == "keb.ca_file":  # it must exist and hold certificates
        import certifi

        (tmp_path / "keb-ca.pem").write_bytes(Path(certifi.where()).read_bytes())
    config = load_config(write(tmp_path, "\n".join(lines)), EXAMPLE_ENV)
    value = getattr(getattr(config, section), name)
    spec = next(s for s in dataclasses.fields(SECTIONS[section]) if s.name == name)
    default = field_default(spec)
    if default is None:
        assert value is not None, f"{key}: the example line sets nothing"
    elif isinstance(default, Path):
        assert value == tmp_path / default, f"{key}: the example is not the default"
    elif default not in ((), {}):  # an empty collection may be shown filled, as an example
        assert value == default, f"{key}: the example is not the default"
