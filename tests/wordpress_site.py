"""A real WordPress site and a real moderation service for the WordPress tests. Nothing is mocked.

- :class:`ModerationService`: gunicorn serving ``service:create_app()`` and ``worker.py`` as
  subprocesses, on the test Redis and an SQLite file, scoring with the tiny test model.
- :class:`WordPressSite`: Debian's ``wordpress`` package copied into a temp dir, a fresh MariaDB
  database (127.0.0.1:3306, root), installed through WordPress's own ``wp_install()`` and served by
  PHP's built-in server (several workers, so WordPress can take our webhook while it waits on us).

``.ci/run`` installs ``wordpress``, ``php-cli``, ``php-mysql`` and MariaDB and starts MariaDB.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pymysql
import pytest

ROOT = Path(__file__).resolve().parent.parent
WORDPRESS_DIR = Path("/usr/share/wordpress")
PLUGIN_DIR = ROOT / "integrations" / "wordpress"
PLUGIN = "moderation-service/moderation-service.php"
MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
ADMIN_USER, ADMIN_PASSWORD = "editor", "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url, timeout=2)
            return
        time.sleep(0.1)
    raise RuntimeError(f"{url} does not answer after {timeout}s")


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.1) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def require_wordpress() -> None:
    """Fail (not skip) without the software: CI installs it, so a skip would hide a broken set-up."""
    missing = [what for what in ("php",) if shutil.which(what) is None]
    if not (WORDPRESS_DIR / "wp-settings.php").exists():
        missing.append("wordpress (Debian package)")
    if missing:
        pytest.fail(
            f"missing {', '.join(missing)}: run .ci/run or apt-get install wordpress php-cli php-mysql"
        )
    try:
        pymysql.connect(**MARIADB).close()
    except pymysql.MySQLError as error:
        pytest.fail(f"MariaDB is not running at 127.0.0.1:3306 (root): {error}")


# --- the moderation service -----------------------------------------------------------------------


@dataclass
class ModerationService:
    workdir: Path
    redis_url: str
    model_dir: Path
    redis_prefix: str
    port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.workdir / 'moderation.db'}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS", "DATABASE", "MODERATION"))}
        env.update(
            REDIS_URL=self.redis_url,
            REDIS_PREFIX=self.redis_prefix,
            DATABASE_URL=self.database_url,
            MODERATION_VAR_DIR=str(self.workdir / "var"),
            MODERATION_MODEL_DIR=str(self.model_dir),
            RECONCILE_INTERVAL_SECONDS="0.5",
            RECONCILE_AFTER_SECONDS="5",
            LOG_LEVEL="WARNING",
            PYTHONPATH=str(ROOT),
            OMP_NUM_THREADS="1",
            OPENBLAS_NUM_THREADS="1",
        )
        return env

    def cli(self, *args: str, stdin: str | None = None) -> str:
        """``python -m service ...`` against this service's database; its standard output."""
        done = subprocess.run(
            [sys.executable, "-m", "service", *args],
            input=stdin,
            env=self.env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"python -m service {' '.join(args)} failed: {done.stderr}")
        return done.stdout

    def create_key(self, *options: str) -> dict[str, str]:
        """A key from ``keys create`` (what a site owner runs), as ``{"key": ..., "webhook secret": ...}``."""
        out = self.cli("keys", "create", *options)
        return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)

    def start(self) -> None:
        self.start_api()
        self.start_worker()

    def start_api(self) -> None:
        self._spawn(
            "api",
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}", "--workers", "1"]
            + ["--threads", "8", "--log-level", "warning", "service:create_app()"],
        )
        wait_for_http(f"{self.url}/healthz")

    def start_worker(self) -> None:
        self._spawn("worker", [sys.executable, "worker.py"])

    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - kept open for the process
        self.processes[name] = subprocess.Popen(
            args, env=self.env(), cwd=ROOT, stdout=log, stderr=log, start_new_session=True
        )

    def stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)


@contextlib.contextmanager
def running_service(workdir: Path, redis_url: str, model_dir: Path) -> Iterator[ModerationService]:
    workdir.mkdir(parents=True, exist_ok=True)
    service = ModerationService(workdir, redis_url, model_dir, f"wp-{secrets.token_hex(4)}")
    service.cli("init-db")
    service.start()
    try:
        yield service
    finally:
        service.stop_all()


# --- WordPress ------------------------------------------------------------------------------------

_ROUTER = """<?php
// PHP's built-in server: real files as they are, everything else through WordPress (pretty permalinks).
$path = parse_url( $_SERVER['REQUEST_URI'], PHP_URL_PATH );
if ( '/' !== $path && is_file( __DIR__ . $path ) ) {
	return false;
}
$_SERVER['SCRIPT_NAME'] = '/index.php';
require __DIR__ . '/index.php';
"""

# The test site's own rules: one IP posts many comments here, which WordPress would call a flood.
_TEST_MU_PLUGIN = """<?php
remove_action( 'check_comment_flood', 'check_comment_flood_db', 10 );
"""

# The README's must-use plugin for WordPress's bundled Akismet plugin, pointed at our service.
_AKISMET_REDIRECT = """<?php
add_filter( 'pre_http_request', function ( $preempt, $args, $url ) {
	if ( ! preg_match( '#^https?://rest\\.akismet\\.com/(.*)$#', $url, $m ) ) {
		return $preempt;
	}
	unset( $args['headers']['Host'] ); // the plugin forces "Host: rest.akismet.com"
	return wp_remote_request( '%s/' . $m[1], $args );
}, 10, 3 );
"""


@dataclass
class WordPressSite:
    root: Path
    database: str
    table_prefix: str = "wp_"
    port: int = field(default_factory=free_port)
    post_id: int = 0
    server: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/wp-json/moderation-service/v1/webhook"

    # -- set-up --

    def build(self) -> None:
        shutil.copytree(
            WORDPRESS_DIR,
            self.root,
            symlinks=False,
            ignore=lambda directory, names: (
                {"wp-config.php", "wp-content"} if Path(directory) == WORDPRESS_DIR else set()
            ),
        )
        content = self.root / "wp-content"
        for sub in ("plugins", "themes", "mu-plugins", "uploads"):
            (content / sub).mkdir(parents=True, exist_ok=True)
        shutil.copytree(WORDPRESS_DIR / "wp-content/plugins/akismet", content / "plugins/akismet")
        for theme in (WORDPRESS_DIR / "wp-content/themes").iterdir():
            shutil.copytree(theme, content / "themes" / theme.name)
        shutil.copytree(PLUGIN_DIR, content / "plugins/moderation-service")
        (content / "mu-plugins/test-site.php").write_text(_TEST_MU_PLUGIN)
        (self.root / "router.php").write_text(_ROUTER)
        keys = "\n".join(
            f"define( '{name}', '{secrets.token_hex(32)}' );"
            for name in ("AUTH_KEY", "SECURE_AUTH_KEY", "LOGGED_IN_KEY", "NONCE_KEY")
            + ("AUTH_SALT", "SECURE_AUTH_SALT", "LOGGED_IN_SALT", "NONCE_SALT")
        )
        (self.root / "wp-config.php").write_text(
            textwrap.dedent(
                f"""\
                <?php
                define( 'DB_NAME', '{self.database}' );
                define( 'DB_USER', 'root' );
                define( 'DB_PASSWORD', '' );
                define( 'DB_HOST', '127.0.0.1:3306' );
                define( 'DB_CHARSET', 'utf8mb4' );
                define( 'DB_COLLATE', '' );
                $table_prefix = '{self.table_prefix}';
                define( 'WP_DEBUG', true );
                define( 'WP_DEBUG_LOG', '{self.root}/debug.log' );
                define( 'WP_DEBUG_DISPLAY', false );
                // The tests run the plugin's WP-Cron job themselves; no update checks to wordpress.org.
                define( 'DISABLE_WP_CRON', true );
                define( 'WP_HTTP_BLOCK_EXTERNAL', true );
                define( 'AUTOMATIC_UPDATER_DISABLED', true );
                """
            )
            + keys
            + "\nif ( ! defined( 'ABSPATH' ) ) {\n\tdefine( 'ABSPATH', __DIR__ . '/' );\n}\n"
            + "require_once ABSPATH . 'wp-settings.php';\n"
        )
        with contextlib.closing(pymysql.connect(**MARIADB)) as connection, connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{self.database}` CHARACTER SET utf8mb4")
        out = self.php(
            f"""
            define( 'WP_INSTALLING', true );
            require ABSPATH_DIR . '/wp-load.php';
            require_once ABSPATH . 'wp-admin/includes/upgrade.php';
            wp_install( 'Riverside News', '{ADMIN_USER}', 'editor@example.org', true, '',
                '{ADMIN_PASSWORD}' );
            update_option( 'siteurl', '{self.url}' );
            update_option( 'home', '{self.url}' );
            update_option( 'permalink_structure', '/%postname%/' );
            flush_rewrite_rules();
            $post_id = wp_insert_post( array(
                'post_title' => 'Council closes the library on Sundays',
                'post_content' => 'The council voted on Tuesday to close the central library on Sundays.',
                'post_status' => 'publish',
                'comment_status' => 'open',
            ) );
            echo wp_json_encode( array( 'post_id' => $post_id ) );
            """
        )
        self.post_id = int(json.loads(out.strip().splitlines()[-1])["post_id"])

    def start(self) -> None:
        env = dict(os.environ, PHP_CLI_SERVER_WORKERS="4")
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - kept open for the process
        self.server = subprocess.Popen(
            ["php", "-S", f"127.0.0.1:{self.port}", "-t", str(self.root), str(self.root / "router.php")],
            cwd=self.root,
            env=env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        wait_for_http(f"{self.url}/wp-login.php")

    def stop(self) -> None:
        if self.server is not None and self.server.poll() is None:
            os.killpg(self.server.pid, 15)
            self.server.wait(timeout=20)

    def drop(self) -> None:
        with contextlib.closing(pymysql.connect(**MARIADB)) as connection, connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{self.database}`")

    # -- driving WordPress --

    def php(self, code: str) -> str:
        """Run PHP against this site (``ABSPATH_DIR`` is its root); standard output."""
        script = self.root / f"cli-{secrets.token_hex(4)}.php"
        script.write_text(
            "<?php\n$_SERVER['HTTP_HOST'] = '127.0.0.1:"
            + str(self.port)
            + "';\ndefine( 'ABSPATH_DIR', '"
            + str(self.root)
            + "' );\n"
            + textwrap.dedent(code)
        )
        try:
            done = subprocess.run(["php", str(script)], capture_output=True, text=True, timeout=120)
        finally:
            script.unlink()
        if done.returncode != 0:
            raise RuntimeError(f"php failed ({done.returncode}): {done.stdout}\n{done.stderr}")
        return done.stdout

    def wp(self, code: str) -> str:
        """Run PHP with WordPress loaded."""
        return self.php("require ABSPATH_DIR . '/wp-load.php';\n" + textwrap.dedent(code))

    def activate(self, plugin: str) -> None:
        self.wp(f"require_once ABSPATH . 'wp-admin/includes/plugin.php';\nactivate_plugin( '{plugin}' );")

    def set_option(self, name: str, value: Any) -> None:
        self.wp(f"update_option( '{name}', json_decode( {json.dumps(json.dumps(value))}, true ) );")

    def run_sync(self) -> dict[str, int]:
        """The plugin's WP-Cron job, as WP-Cron runs it."""
        out = self.wp("echo wp_json_encode( Moderation_Service_Sync::run() );")
        return json.loads(out.strip().splitlines()[-1])

    def post_comment(self, text: str, name: str, email: str, url: str = "", parent: int = 0) -> int:
        """Post the comment form exactly as a reader's browser does; the new comment's id."""
        form = {
            "comment": text,
            "author": name,
            "email": email,
            "url": url,
            "submit": "Post Comment",
            "comment_post_ID": str(self.post_id),
            "comment_parent": str(parent),
        }
        headers = {
            "User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            "Referer": f"{self.url}/?p={self.post_id}",
        }
        answer = httpx.post(
            f"{self.url}/wp-comments-post.php", data=form, headers=headers, timeout=30, follow_redirects=False
        )
        location = answer.headers.get("location", "")
        match = re.search(r"#comment-(\d+)", location)
        if answer.status_code != 302 or match is None:
            raise AssertionError(f"comment not accepted: {answer.status_code} {answer.text[:500]}")
        return int(match.group(1))

    def query(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        with (
            contextlib.closing(
                pymysql.connect(**MARIADB, database=self.database, cursorclass=pymysql.cursors.DictCursor)
            ) as connection,
            connection.cursor() as cursor,
        ):
            cursor.execute(sql.replace("{p}", self.table_prefix), args)
            return list(cursor.fetchall())

    def approved(self, comment_id: int) -> str:
        rows = self.query("SELECT comment_approved FROM {p}comments WHERE comment_ID = %s", comment_id)
        return rows[0]["comment_approved"]

    def meta(self, comment_id: int, key: str) -> str | None:
        rows = self.query(
            "SELECT meta_value FROM {p}commentmeta WHERE comment_id = %s AND meta_key = %s",
            comment_id,
            f"_moderation_service_{key}",
        )
        return rows[0]["meta_value"] if rows else None

    @contextlib.contextmanager
    def admin(self) -> Iterator[httpx.Client]:
        """An httpx client logged in to wp-admin as the site's editor (an administrator)."""
        with httpx.Client(base_url=self.url, timeout=30, follow_redirects=True) as client:
            client.cookies.set("wordpress_test_cookie", "WP Cookie check")
            answer = client.post(
                "/wp-login.php",
                data={"log": ADMIN_USER, "pwd": ADMIN_PASSWORD, "testcookie": "1", "wp-submit": "Log In"},
            )
            assert "wp-admin" in str(answer.url), answer.text[:500]
            yield client

    def moderate(self, client: httpx.Client, comment_id: int, action: str) -> None:
        """Click a row action (approve, unapprove, spam, unspam, trash) on the Comments screen."""
        wanted = f"action={action}comment&"
        for view in ("all", "spam", "trash"):
            page = client.get("/wp-admin/edit-comments.php", params={"comment_status": view}).text
            for link in {unescape(link) for link in re.findall(r'href="(comment\.php\?[^"]+)"', page)}:
                if re.search(rf"[?&]c={comment_id}&", link) and wanted in link:
                    answer = client.get(f"/wp-admin/{link}")
                    assert answer.status_code == 200, answer.text[:500]
                    return
        raise AssertionError(f"no {action} link for comment {comment_id} on the Comments screen")


@contextlib.contextmanager
def wordpress_site(workdir: Path, table_prefix: str = "wp_") -> Iterator[WordPressSite]:
    require_wordpress()
    site = WordPressSite(workdir / "wordpress", f"wp_test_{secrets.token_hex(4)}", table_prefix)
    try:
        site.build()
        site.start()
        yield site
    finally:
        site.stop()
        site.drop()
