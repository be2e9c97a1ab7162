"""No password in the store, logs, exports or output: a spec whose [storage] url carries a password runs,
then every file under the test's folder, every output and (on PostgreSQL) every row is searched for it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.store import redact, redact_spec, state_dir, without_password
from engine.text import hide_passwords
from tests.conftest import fresh_postgres_database, run_cli
from tests.helpers_run import tunetui_here, wait_for, write_spec

SECRET = "s3cret"
ELSEWHERE = f"postgresql://u:{SECRET}@127.0.0.1:9/elsewhere"  # a spec's url, overridden by --storage


def files_containing(root: Path, needle: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def cli(*args: str) -> str:
    result = run_cli(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert SECRET not in out, out
    return out


def test_redaction_helpers():
    assert redact(ELSEWHERE) == "postgresql://u:***@127.0.0.1:9/elsewhere"
    assert without_password(ELSEWHERE) == "postgresql://u@127.0.0.1:9/elsewhere"
    assert hide_passwords(f"cannot reach {ELSEWHERE}: refused") == "cannot reach postgresql://u:***@127.0.0.1:9/elsewhere: refused"
    text = f'# mine\n[storage]\nurl = "{ELSEWHERE}"  # shared\n'
    assert redact_spec(text) == '# mine\n[storage]\nurl = "postgresql://u@127.0.0.1:9/elsewhere"  # shared\n'
    escaped = '[storage]\nurl = "postgresql://u:s\\u0033cret@h/d"\n'  # not literally in the text
    assert SECRET not in redact_spec(escaped) and "postgresql://u@h/d" in redact_spec(escaped)
    bad_port = f"postgresql://u:{SECRET}@h:port/d"  # SQLAlchemy cannot parse it: the text rule still hides it
    for shown in (redact(bad_port), without_password(bad_port), redact_spec(f'[storage]\nurl = "{bad_port}"\n')):
        assert SECRET not in shown and "postgresql://u:***@h:port/d" in shown


def wait_detached_run_done(store: str, study: str, trials: int) -> None:
    def done() -> bool:  # polled in this process (a Python start per poll would be most of the wait)
        result = tunetui_here("ls", "--json", storage=store)
        rows = json.loads(result.stdout) if result.returncode == 0 else []
        row = next((s for s in rows if s["study_name"] == study), None)
        return bool(row) and sum(row["counts"].values()) >= trials and row["status"] == "finished"

    wait_for(done, 120, "the detached run to finish", every=0.5)


@pytest.mark.parametrize("where", ["spec", "set"])
def test_a_password_in_the_spec_url_reaches_no_store_log_export_or_output(tmp_path, where, no_stray_processes):
    extra = f'[storage]\nurl = "{ELSEWHERE}"\n' if where == "spec" else ""
    spec = write_spec(tmp_path / "specs", "secretive", n_trials=1, extra=extra)
    over = ["--set", f'storage.url="{ELSEWHERE}"'] if where == "set" else []
    store = f"sqlite:///{tmp_path / 'store' / 'store.db'}"
    cli("run", str(spec), *over, "--storage", store, "--quiet")
    if where == "spec":  # the detached run's log, too (once is enough: --set takes the same path)
        cli("run", str(spec), "--storage", store, "--detach", "--trials", "1")
        wait_detached_run_done(store, "secretive", 2)
        assert any(state_dir(store).rglob("*.log"))
    out = tmp_path / "out"
    cli("export", "secretive", "--best-spec", str(out / "best.toml"), "--format", "json", "-o",
        str(out / "trials.json"), "--storage", store)  # fmt: skip
    assert "postgresql://u@127.0.0.1:9/elsewhere" in (out / "best.toml").read_text()  # the rest is kept
    for command in (["ls", "--json"], ["show", "secretive", "--json"], ["show", "secretive", "--trial", "0"]):
        cli(*command, "--storage", store)
    assert files_containing(tmp_path, SECRET) == ([spec] if where == "spec" else [])


def test_a_password_in_a_postgresql_url_never_reaches_the_store(tmp_path, postgres_server):
    url = fresh_postgres_database(postgres_server, prefix="secret")
    with_password = sa.engine.make_url(url)._replace(password=SECRET).render_as_string(hide_password=False)
    spec = write_spec(tmp_path / "specs", "pgsecret", n_trials=1, extra=f'[storage]\nurl = "{with_password}"\n')
    cli("run", str(spec), "--quiet")  # the spec's url: the server trusts local connections, any password
    cli("export", "pgsecret", "--best-spec", str(tmp_path / "best.toml"), "--storage", with_password)
    cli("show", "pgsecret", "--storage", with_password)
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1), poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        tables = sa.inspect(conn).get_table_names()
        leaked = [t for t in tables if conn.execute(sa.text(f'SELECT 1 FROM "{t}" r WHERE r::text LIKE :s'),
                                                    {"s": f"%{SECRET}%"}).first()]  # fmt: skip
    engine.dispose()
    assert "study_user_attributes" in tables and leaked == []
    assert files_containing(tmp_path, SECRET) == [spec]


def test_a_store_error_names_the_url_with_the_password_hidden():
    result = run_cli("ls", "--storage", ELSEWHERE)  # nothing listens on port 9
    assert result.returncode == 1
    assert SECRET not in result.stdout + result.stderr and "u:***@127.0.0.1:9/elsewhere" in result.stderr
