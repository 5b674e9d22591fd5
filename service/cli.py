"""Operator commands: ``python -m service keys|moderators|authors|init-db|reconcile|run ...``."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from sqlalchemy.orm import Session

from service.connections import connect_database, connect_sessions, embedded_redis_url, start_embedded_redis
from service.db import ROLE_MODERATOR, ROLES, ApiKey
from service.jobs import reconcile
from service.keys import (
    DEFAULT_SCOPES,
    KEY_CACHE_SECONDS,
    NO_LIMIT,
    SCOPES,
    InvalidRateLimit,
    InvalidScope,
    InvalidSecret,
    create_api_key,
    disable_api_key,
    find_api_key,
    list_api_keys,
    server_secret,
    set_rate_limits,
)
from service.lifetime import REDIS_STOP_SECONDS, die_with_parent, watch_embedded_redis
from service.logs import configure_logging
from service.moderators import (
    ModeratorError,
    create_moderator,
    issue_token,
    list_moderators,
    set_disabled,
    set_password,
    set_role,
)
from service.privacy import apply_retention, erase_author
from service.runtime import Runtime
from service.settings import Settings, SettingsError
from service.sites import SiteError, create_site, find_site, list_sites

logger = logging.getLogger(__name__)

#: Each command group: name -> (add_arguments(subparser), run(args, settings)).
COMMANDS: dict[
    str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace, Settings], int]]
] = {}

DEV_KEY_FILE = "dev-api-key"


# --- keys ----------------------------------------------------------------------------------------


def _keys_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="create an API key (printed once)")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--scopes", default=",".join(DEFAULT_SCOPES), help=f"comma-separated: {', '.join(SCOPES)}"
    )
    create.add_argument("--webhook-url", help="where verdicts are POSTed (signed)")
    create.add_argument("--rate-limit", help="e.g. 50/second (compatibility endpoints)")
    create.add_argument(
        "--comment-rate-limit", help="e.g. 100/second on POST /v1/comments (default: COMMENT_RATE_LIMIT)"
    )
    create.add_argument("--site", help="the site whose comments the key posts (default: the default site)")
    create.add_argument(
        "--secret",
        help="use this key instead of a random one (e.g. a 12-character key for the WordPress Akismet "
        "plugin, which refuses other lengths); 12 to 200 printable ASCII characters",
    )
    sub.add_parser("list", help="list keys (never their secrets)")
    limit = sub.add_parser(
        "limit", help=f"change a key's own rate limits ({NO_LIMIT!r}: back to the setting)"
    )
    limit.add_argument("id", type=int)
    limit.add_argument("--rate-limit", help=f"e.g. 50/second (compatibility endpoints), or {NO_LIMIT}")
    limit.add_argument("--comment-rate-limit", help=f"e.g. 100/second on POST /v1/comments, or {NO_LIMIT}")
    disable = sub.add_parser("disable", help="disable a key")
    disable.add_argument("id", type=int)


def _keys_run(args: argparse.Namespace, settings: Settings) -> int:
    with connect_sessions(settings)() as session:
        if args.action == "create":
            site = find_site(session, args.site) if args.site else None
            if args.site and site is None:
                print(f"error: no site {args.site!r} (see `sites list`)", file=sys.stderr)
                return 2
            try:
                new = create_api_key(
                    session,
                    args.name,
                    args.scopes.split(","),
                    webhook_url=args.webhook_url,
                    rate_limit=args.rate_limit,
                    comment_rate_limit=args.comment_rate_limit,
                    secret=args.secret,
                    sealing_key=server_secret(settings),
                    site_id=site.id if site is not None else None,
                )
            except (InvalidScope, InvalidSecret, InvalidRateLimit) as error:
                print(f"error: {error}", file=sys.stderr)
                return 2
            print(f"id: {new.api_key.id}\nkey: {new.secret}\nscopes: {new.api_key.scopes}")
            if site is not None:
                print(f"site: {site.name}")
            if new.webhook_secret:
                print(f"webhook secret: {new.webhook_secret}")
            print("Store these now: they are not shown again.")
            return 0
        if args.action == "list":
            for api_key in list_api_keys(session):
                state = "disabled" if api_key.disabled_at else "active"
                shown = f"{api_key.key_prefix}…" if api_key.key_prefix else "(short key)"
                print(f"{api_key.id}\t{shown}\t{api_key.name}\t{api_key.scopes}\t{state}\t{_limits(api_key)}")
            return 0
        if args.action == "limit":
            return _keys_limit(session, args)
        if not disable_api_key(session, args.id):
            print(f"error: no key with id {args.id}", file=sys.stderr)
            return 2
        print(f"disabled key {args.id}")
        return 0


def _limits(api_key: ApiKey) -> str:
    return (
        f"rate limit: {api_key.rate_limit or 'RATE_LIMIT'}; "
        f"comment rate limit: {api_key.comment_rate_limit or 'COMMENT_RATE_LIMIT'}"
    )


def _keys_limit(session: Session, args: argparse.Namespace) -> int:
    if args.rate_limit is None and args.comment_rate_limit is None:
        print("error: give --rate-limit, --comment-rate-limit or both", file=sys.stderr)
        return 2
    try:
        api_key = set_rate_limits(session, args.id, args.rate_limit, args.comment_rate_limit)
    except InvalidRateLimit as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if api_key is None:
        print(f"error: no key with id {args.id}", file=sys.stderr)
        return 2
    print(f"key {api_key.id}: {_limits(api_key)} (running processes see it within {KEY_CACHE_SECONDS:g} s)")
    return 0


# --- sites ---------------------------------------------------------------------------------------


def _sites_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="create a site (its rules start empty, its thresholds the defaults)")
    add.add_argument("name")
    sub.add_parser("list", help="list sites")


def _sites_run(args: argparse.Namespace, settings: Settings) -> int:
    with connect_sessions(settings)() as session:
        if args.action == "add":
            try:
                site = create_site(session, args.name)
            except SiteError as error:
                print(f"error: {error}", file=sys.stderr)
                return 2
            print(f"created site {site.id}\t{site.name}")
            return 0
        for site in list_sites(session):
            print(f"{site.id}\t{site.name}\t{json.dumps(site.settings or {}, sort_keys=True)}")
        return 0


# --- init-db and reconcile ----------------------------------------------------------------------


def _init_db_run(args: argparse.Namespace, settings: Settings) -> int:
    connect_database(settings, create=True)
    print("database ready")
    return 0


def _reconcile_run(args: argparse.Namespace, settings: Settings) -> int:
    report = reconcile(Runtime.build(settings))
    print(json.dumps(report.__dict__))
    return 0


# --- run: the development launcher behind `make run` ---------------------------------------------


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=8, help="threads that run requests in the API")
    parser.add_argument("--workers", type=int, default=1)


def ensure_dev_key(settings: Settings) -> str:
    """A development API key with every scope, kept in ``var/dev-api-key`` (created once)."""
    path = settings.var_dir / DEV_KEY_FILE
    sessions = connect_sessions(settings)
    if path.exists():
        secret = path.read_text().strip()
        with sessions() as session:
            if find_api_key(session, secret) is not None:
                return secret
    with sessions() as session:
        new = create_api_key(session, "development", SCOPES)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new.secret + "\n")
    path.chmod(0o600)
    return new.secret


def _run_run(args: argparse.Namespace, settings: Settings) -> int:
    """Start the API (waitress) and a worker; with no REDIS_URL, an embedded Redis for both."""
    env = dict(os.environ)
    embedded = watcher = None
    if not settings.external_redis:
        embedded = start_embedded_redis(settings)
        env["REDIS_URL"] = embedded_redis_url(embedded)
        # Stops that Redis if this process is killed outright (it daemonises: it is not our child).
        watcher = watch_embedded_redis(embedded.pid)  # type: ignore[attr-defined]
    connect_database(settings, create=True)
    key = ensure_dev_key(settings)
    python = sys.executable
    bind = f"{args.host}:{args.port}"
    supervisor = os.getpid()

    def start(command: list[str]) -> subprocess.Popen:
        # Each child gets SIGTERM when this process dies, even by SIGKILL: no orphan holds the port.
        return subprocess.Popen(command, env=env, preexec_fn=lambda: die_with_parent(supervisor))  # noqa: PLW1509

    web = start(web_server_command(python, bind, args.threads, settings))
    worker = start([python, "worker.py", "--processes", str(args.workers)])
    # Retraining gets a worker of its own, so it never holds back scoring.
    trainer = start([python, "worker.py", "--queues", "training"])
    url = f"http://{bind}"
    if not _wait_until_serving(f"{url}/healthz", web, timeout=180):
        print("error: the API did not start; see the messages above", file=sys.stderr)
        for process in (web, worker, trainer):
            process.terminate()
        return 1
    body = json.dumps({"name": "Ada", "email": "ada@example.com", "text": "Thanks for the clear article!"})
    print(f"\nModeration service: {url}  (API docs: {url}/openapi.json)\nDevelopment API key: {key}\nTry:\n")
    print(
        f"curl -s -X POST '{url}/v1/comments?wait=2' -H 'Authorization: Bearer {key}' "
        f"-H 'Content-Type: application/json' -d {shlex.quote(body)}\n",
        flush=True,
    )
    print(
        f"Moderators: create an account with `.venv/bin/python -m service moderators add NAME`, then open "
        f"{url}/moderate/\n",
        flush=True,
    )
    stop = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    while not stop and web.poll() is None and worker.poll() is None:
        time.sleep(0.5)
    for process in (web, worker, trainer):
        if process.poll() is None:
            process.terminate()
    for process in (web, worker, trainer):
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
    del embedded  # the embedded Redis server stops with its last client
    if watcher is not None:
        watcher.stdin.close()  # type: ignore[union-attr]  # the watcher stops Redis if it still runs
        watcher.wait(timeout=REDIS_STOP_SECONDS + 5)
    return 0 if stop else 1


#: Connections the API holds open at once; slow clients hold a socket and a buffer each, not a thread.
WEB_CONNECTION_LIMIT = 1000
#: A connection that sends nothing for this long is closed.
WEB_IDLE_TIMEOUT_SECONDS = 30


def web_server_command(python: str, bind: str, threads: int, settings: Settings) -> list[str]:
    """The API under waitress, which reads each request whole before a thread runs it.

    A thread-per-connection server (gunicorn's sync and gthread workers) gives a thread to every
    client from its first byte: a dozen clients trickling headers or a body at a byte a second take
    the API offline. Waitress reads requests in one asynchronous loop and buffers them, so threads
    only ever run complete requests. Its own body limit is set well above ``MAX_BODY_BYTES``, so the
    endpoints answer over-long bodies in their own protocols' shapes; it only bounds buffering.
    """
    return [
        python,
        "-m",
        "waitress",
        f"--listen={bind}",
        f"--threads={threads}",
        f"--connection-limit={WEB_CONNECTION_LIMIT}",
        f"--channel-timeout={WEB_IDLE_TIMEOUT_SECONDS}",
        f"--max-request-body-size={max(4 * settings.max_body_bytes, 1024 * 1024)}",
        "--asyncore-use-poll",  # select() stops at 1,024 sockets
        "--no-expose-tracebacks",
        "--ident=moderation",
        "--call",
        "service:create_app",
    ]


def _wait_until_serving(url: str, process: subprocess.Popen, timeout: float) -> bool:
    """Print the curl example only once it works: the API loads the model before it listens."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    return False


# --- moderators -----------------------------------------------------------------------------------


def _moderators_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="create a moderator (asks for the password)")
    add.add_argument("username")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.add_argument("--site", help="the one site this moderator works on (default: every site)")
    add.add_argument("--role", choices=ROLES, default=ROLE_MODERATOR, help="admins also edit rules")
    sub.add_parser("list", help="list moderators")
    role = sub.add_parser("role", help="set a moderator's role and site")
    role.add_argument("username")
    role.add_argument("--role", choices=ROLES, required=True)
    role.add_argument("--site", help="the one site they work on (default: every site)")
    for name, help_text in (
        ("disable", "disable a moderator (pages and token stop working)"),
        ("enable", "enable a moderator again"),
        ("password", "set a new password"),
        ("token", "issue an API token for the JSON moderation API (printed once)"),
    ):
        action = sub.add_parser(name, help=help_text)
        action.add_argument("username")
        if name == "password":
            action.add_argument("--password-stdin", action="store_true")


def _read_password(args: argparse.Namespace) -> str:
    if getattr(args, "password_stdin", False):
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat: ") != first:
        raise ModeratorError("the passwords differ")
    return first


def _moderators_run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        with connect_sessions(settings)() as session:
            if args.action == "add":
                site = find_site(session, args.site) if args.site else None
                if args.site and site is None:
                    raise ModeratorError(f"no site {args.site!r} (see `sites list`)")
                moderator = create_moderator(
                    session,
                    args.username,
                    _read_password(args),
                    site_id=site.id if site is not None else None,
                    role=args.role,
                )
                print(
                    f"created {moderator.role} {moderator.username}"
                    + (f" for site {site.name}" if site else "")
                )
            elif args.action == "list":
                for moderator in list_moderators(session):
                    state = "disabled" if moderator.disabled else "active"
                    token = "token" if moderator.token_hash else "-"
                    role = moderator.role or ROLE_MODERATOR
                    print(f"{moderator.username}\t{state}\t{token}\t{role}\tsite={moderator.site_id or '*'}")
            elif args.action == "role":
                site = find_site(session, args.site) if args.site else None
                if args.site and site is None:
                    raise ModeratorError(f"no site {args.site!r} (see `sites list`)")
                set_role(session, args.username, args.role, site.id if site is not None else None)
                print(f"{args.username} is now {args.role} of " + (site.name if site else "every site"))
            elif args.action in ("disable", "enable"):
                set_disabled(session, args.username, args.action == "disable")
                print(f"{args.action}d moderator {args.username}")
            elif args.action == "password":
                set_password(session, args.username, _read_password(args))
                print(f"password changed for {args.username}")
            elif args.action == "token":
                print(issue_token(session, args.username))
    except ModeratorError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


# --- authors: erasure and retention --------------------------------------------------------------


def _authors_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    erase = sub.add_parser("erase", help="erase an author's e-mail, IP, name and URL everywhere (recorded)")
    erase.add_argument("--email", required=True)
    erase.add_argument("--actor", help="who asks, for the record (default: the system user)")
    sub.add_parser(
        "retention", help="replace e-mail addresses and IPs older than RETENTION_DAYS by pseudonyms"
    )


def _authors_run(args: argparse.Namespace, settings: Settings) -> int:
    with connect_sessions(settings)() as session:
        if args.action == "erase":
            actor = f"operator:{args.actor or getpass.getuser()}"
            try:
                report = erase_author(session, args.email, actor, server_secret(settings))
            except ValueError as error:
                print(f"error: {error}", file=sys.stderr)
                return 2
            print(f"erasure {report.erasure_id}: {report.comments} comments, {report.labels} labels")
            return 0
        retained = apply_retention(session, settings, server_secret(settings))
        print(
            f"pseudonymised {retained.comments} comments and {retained.labels} labels "
            f"older than {settings.retention_days} days"
        )
        return 0


COMMANDS.update(
    {
        "authors": (_authors_arguments, _authors_run),
        "keys": (_keys_arguments, _keys_run),
        "moderators": (_moderators_arguments, _moderators_run),
        "sites": (_sites_arguments, _sites_run),
        "init-db": (lambda parser: None, _init_db_run),
        "reconcile": (lambda parser: None, _reconcile_run),
        "run": (_run_arguments, _run_run),
    }
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service", description="Comment moderation service")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (add_arguments, _) in COMMANDS.items():
        add_arguments(sub.add_parser(name))
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    configure_logging(settings)
    return COMMANDS[args.command][1](args, settings)
