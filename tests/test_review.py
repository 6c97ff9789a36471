"""`maya review`: the decisions a person makes on a real dedup run (phash mode on real photos and edited
copies, a real DuckDB file), the HTTP guard, the page's actions on files, the pairs the decisions teach, and
the whole thing in headless Chromium (slow)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import duckdb
import pytest
from PIL import ImageEnhance

from maya.dedup.options import DedupOptions
from maya.dedup.pipeline import run_dedup
from maya.review import state as review_state
from maya.review.session import ReviewSession
from maya.store import review as review_store
from tests.conftest import photo


def _collection(root: Path) -> Path:
    """Three duplicate groups (astronaut x3: a re-encode and a smaller copy; chelsea x2: brighter; coffee x2:
    byte-identical) and one photo on its own."""
    root.mkdir(parents=True)
    a = photo("astronaut", 256)
    a.save(root / "astronaut.jpg", quality=92)
    a.save(root / "astronaut_q40.jpg", quality=40)
    a.resize((128, 128)).save(root / "astronaut_small.jpg", quality=90)
    c = photo("coffee", 256)
    c.save(root / "coffee.jpg", quality=92)
    shutil.copy(root / "coffee.jpg", root / "coffee copy.jpg")
    ch = photo("chelsea", 256)
    ch.save(root / "chelsea.png")
    ImageEnhance.Brightness(ch).enhance(1.2).save(root / "chelsea_bright.png")
    photo("rocket", 256).save(root / "rocket.jpg")
    return root


@pytest.fixture(scope="module")
def _recorded(tmp_path_factory):
    """One real phash dedup run for the module: (photos, pristine copy of them, pristine data dir, run id)."""
    root = tmp_path_factory.mktemp("review")
    photos = _collection(root / "photos")
    data = root / "data"
    run = run_dedup([str(photos)], DedupOptions("phash"), db_path=data / "maya.duckdb")
    assert len(run.groups) == 3
    shutil.copytree(photos, root / "pristine")
    return photos, root / "pristine", data, run.run_id


@pytest.fixture
def reviewed(_recorded, tmp_path):
    """(photos folder, data dir, dedup run id): the module's run, its files as the run found them, and a
    fresh copy of its store (the run's paths stay valid; each test's decisions and moves are its own)."""
    photos, pristine, data, run_id = _recorded
    shutil.rmtree(photos)
    shutil.copytree(pristine, photos)
    shutil.copytree(data, tmp_path / "data")
    return photos, tmp_path / "data", run_id


def _session(data: Path) -> ReviewSession:
    return ReviewSession(data / "maya.duckdb", None, data / "review-originals")


def _group_with(session: ReviewSession, name: str) -> dict:
    return next(g for g in session.groups.values() if any(m["path"].endswith("/" + name) for m in g["members"]))


def _member(group: dict, name: str) -> dict:
    return next(m for m in group["members"] if m["path"].endswith("/" + name))


def _rows(data: Path, sql: str, params=()):
    con = duckdb.connect(str(data / "maya.duckdb"), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------- pure rules


def _g(gid, members, chained=False):
    return {"group_id": gid, "chained": chained, "members": [
        {"path": p, "sha256": s, "clause": c} for p, s, c in members]}


def test_risk_order_puts_chained_groups_first_then_model_only_members_then_large_groups():
    small = _g(1, [("/a", "a", "kept"), ("/b", "b", "phash")])
    large = _g(2, [("/c", "c", "kept"), ("/d", "d", "phash"), ("/e", "e", "phash"), ("/f", "f", "exact")])
    model = _g(3, [("/g", "g", "kept"), ("/h", "h", "clip")])
    chained = _g(4, [("/i", "i", "kept"), ("/j", "j", "phash")], chained=True)
    assert [g["group_id"] for g in review_state.risk_order([small, large, model, chained])] == [4, 3, 2, 1]


def test_a_split_makes_two_parts_each_keeping_its_own_file_and_the_decisions_imply_labelled_pairs():
    g = _g(7, [("/k", "k", "kept"), ("/m1", "m1", "phash"), ("/m2", "m2", "phash"), ("/n1", "n1", "clip"),
               ("/n2", "n2", "clip")])
    decisions = [{"group_id": 7, "decision": "split", "paths": ["/n1"]},
                 {"group_id": 7, "decision": "not_duplicate", "paths": ["/m2"]},
                 {"group_id": 7, "decision": "keep", "paths": ["/n2"]},
                 {"group_id": 8, "decision": "group_wrong", "paths": []}]  # another group: ignored
    st = review_state.group_state(g, decisions)
    assert [[m["path"] for m in part] for part in st.parts] == [["/k", "/m1"], ["/n2", "/n1"]]
    assert st.rejected == {"/m2"} and not st.wrong
    pairs, notes = review_state.review_pairs([g], decisions)
    got = {(a, b): label for a, b, label, *_ in pairs}
    assert got == {("k", "m1"): True, ("n1", "n2"): True, ("k", "m2"): False, ("k", "n2"): False}
    assert notes == []
    # what may be moved: each part's non-kept, non-rejected members
    report = review_state.action_report([g], decisions)
    assert [(x["keep"], [m["path"] for m in x["members"][1:]]) for x in report["groups"]] == [
        ("/k", ["/m1"]), ("/n2", ["/n1"])]


def test_a_wrong_group_teaches_only_negatives_and_is_never_acted_on():
    g = _g(1, [("/k", "k", "kept"), ("/a", "a", "clip"), ("/b", "b", "clip")])
    decisions = [{"group_id": 1, "decision": "confirm", "paths": []},
                 {"group_id": 1, "decision": "group_wrong", "paths": []}]
    pairs, _ = review_state.review_pairs([g], decisions)
    assert sorted((a, b, label) for a, b, label, *_ in pairs) == [("a", "k", False), ("b", "k", False)]
    assert review_state.action_report([g], decisions)["groups"] == []
    assert review_state.review_pairs([g], [])[0] == []  # not reviewed: nothing learnt


# ---------------------------------------------------------------------------------------------- the session


def test_decisions_are_stored_as_they_are_made_and_a_new_session_shows_them(reviewed):
    photos, data, run_id = reviewed
    s = _session(data)
    assert s.run_id == run_id
    g = _group_with(s, "astronaut_q40.jpg")
    small = _member(g, "astronaut_small.jpg")
    view = s.decide(g["group_id"], "not_duplicate", small["path"])
    assert view["state"]["rejected"] == [small["path"]] and view["state"]["reviewed"]
    rows = _rows(data, "SELECT run_id, group_id, decision, sha256s, paths, withdrawn_at FROM review_decisions")
    assert rows == [(run_id, g["group_id"], "not_duplicate", [small["sha256"]], [small["path"]], None)]

    again = {x["group_id"]: x for x in _session(data).snapshot()["groups"]}[g["group_id"]]
    assert again["state"]["rejected"] == [small["path"]]
    assert [d["decision"] for d in again["decisions"]] == ["not_duplicate"]

    # a second click takes it back: the row stays in the log, marked withdrawn
    view = s.decide(g["group_id"], "not_duplicate", small["path"], withdraw=True)
    assert view["state"]["rejected"] == [] and not view["state"]["reviewed"]
    assert _rows(data, "SELECT count(*) FROM review_decisions WHERE withdrawn_at IS NOT NULL") == [(1,)]


def test_keep_this_one_instead_replaces_the_earlier_choice_of_its_part_only(reviewed):
    _, data, _ = reviewed
    s = _session(data)
    g = _group_with(s, "astronaut_q40.jpg")
    q40, small = _member(g, "astronaut_q40.jpg")["path"], _member(g, "astronaut_small.jpg")["path"]
    assert s.decide(g["group_id"], "keep", q40)["state"]["kept"] == [q40]
    assert s.decide(g["group_id"], "keep", small)["state"]["kept"] == [small]
    assert _rows(data, "SELECT paths, withdrawn_at IS NULL FROM review_decisions ORDER BY decision_id") == [
        ([q40], False), ([small], True)]
    # split before the small copy: each part keeps its own choice
    s.decide(g["group_id"], "split", small)
    assert s.decide(g["group_id"], "keep", q40)["state"]["kept"] == [q40, small]


def test_decisions_that_do_not_apply_are_refused_and_store_nothing(reviewed):
    _, data, _ = reviewed
    s = _session(data)
    g = _group_with(s, "astronaut_q40.jpg")
    kept = g["members"][0]["path"]
    other = _group_with(s, "coffee.jpg")["members"][1]["path"]
    for decision, path, why in [("not_duplicate", kept, "kept file"), ("split", kept, "cannot be split"),
                                ("keep", other, "not a member"), ("delete", None, "unknown decision"),
                                ("not_duplicate", None, "name it")]:
        with pytest.raises(review_store.ReviewError, match=why):
            s.decide(g["group_id"], decision, path)
    with pytest.raises(review_store.ReviewError, match="no group 99"):
        s.decide(99, "confirm")
    assert _rows(data, "SELECT count(*) FROM review_decisions") == [(0,)]


def test_the_review_holds_no_lock_between_clicks_and_says_who_holds_one(reviewed):
    from maya.store import StoreLockedError

    _, data, _ = reviewed
    s = _session(data)
    gid = next(iter(s.groups))
    # another process may write the store while the review is open...
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('ready', flush=True); "
                               "sys.stdin.readline()", str(data / "maya.duckdb")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        # ...and while it does, a click is refused with who holds it, and nothing is lost
        with pytest.raises(StoreLockedError, match=f"in use by process {holder.pid}"):
            s.decide(gid, "confirm")
    finally:
        holder.communicate("\n", timeout=30)
    assert s.decide(gid, "confirm")["state"]["confirmed"]
    assert _rows(data, "SELECT count(*) FROM review_decisions") == [(1,)]


def test_an_unknown_run_or_a_data_dir_without_dedup_runs_is_a_clear_error(reviewed, tmp_path):
    _, data, run_id = reviewed
    with pytest.raises(review_store.ReviewError, match=f"no dedup run {run_id + 5}; dedup runs here: {run_id}"):
        ReviewSession(data / "maya.duckdb", run_id + 5, tmp_path / "m")
    with pytest.raises(review_store.ReviewError, match="no database"):
        ReviewSession(tmp_path / "nowhere" / "maya.duckdb", None, tmp_path / "m")


def test_maya_review_without_a_dedup_run_says_what_to_do(tmp_path, capsys):
    from maya import store
    from maya.cli.app import main

    store.connect(tmp_path / "maya.duckdb").close()  # a store with no dedup run
    assert main(["review", "--no-browser", "--data-dir", str(tmp_path)]) == 2
    assert "no dedup run in this data dir: run `maya dedup DIR` first" in capsys.readouterr().err


def test_a_stored_path_with_bytes_that_are_not_utf8_finds_its_file(tmp_path):
    from maya.io.walk import path_text

    real = os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9 \\x41.jpg")  # a \xe9 byte, and a literal "\x41"
    Path(real).write_bytes(b"x")
    stored = path_text(real)
    assert stored != real and review_state.disk_path(stored) == real
    plain = tmp_path / "plain \\x41.jpg"  # a real name that merely looks escaped is left as it is
    plain.write_bytes(b"y")
    assert review_state.disk_path(str(plain)) == str(plain)


def test_previews_are_only_of_the_runs_own_files(reviewed):
    _, data, _ = reviewed
    s = _session(data)
    g = _group_with(s, "astronaut_q40.jpg")
    thumb = s.preview(g["group_id"], 2)
    full = s.preview(g["group_id"], 0, full=True)
    from PIL import Image
    import io

    assert thumb[:3] == b"\xff\xd8\xff" and max(Image.open(io.BytesIO(thumb)).size) <= 240
    assert Image.open(io.BytesIO(full)).size == (256, 256)
    with pytest.raises(review_store.ReviewError, match="no member 9"):
        s.preview(g["group_id"], 9)


def test_moving_from_the_review_moves_only_reviewed_duplicates_not_rejected_ones_and_undo_restores(reviewed):
    photos, data, run_id = reviewed
    before = _tree(photos)
    s = _session(data)
    astro = _group_with(s, "astronaut_q40.jpg")
    s.decide(astro["group_id"], "not_duplicate", _member(astro, "astronaut_small.jpg")["path"])
    coffee = _group_with(s, "coffee.jpg")
    s.decide(coffee["group_id"], "confirm")
    # the chelsea group is not reviewed: left alone

    plan = s.plan("move")
    assert plan["files"] == 2 and _tree(photos) == before  # a dry run changes nothing
    assert sorted(os.path.basename(a["path"]) for a in plan["actions"]) == ["astronaut_q40.jpg", "coffee copy.jpg"]
    with pytest.raises(review_store.ReviewError, match="changed since the dry run"):
        s.act("move", "0" * 16)
    done = s.act("move", plan["plan_id"])
    assert done["done"] == 2 and done["skipped"] == []
    left = _tree(photos)
    assert sorted(set(before) - set(left)) == ["astronaut_q40.jpg", "coffee copy.jpg"]
    moved = data / "review-originals" / str(photos).lstrip("/")
    assert _tree(moved) == {k: before[k] for k in ("astronaut_q40.jpg", "coffee copy.jpg")}
    assert _rows(data, "SELECT kind, files, done, undone_at FROM review_actions") == [("move", 2, 2, None)]
    # a moved file still previews (from where it went) and the page says where it is
    view = s.group(astro["group_id"])
    q40 = next(m for m in view["members"] if m["name"] == "astronaut_q40.jpg")
    assert q40["moved_to"] and s.preview(astro["group_id"], q40["index"]) is not None
    assert s.plan("move")["files"] == 0  # nothing left to do

    undone = s.undo(done["action_id"])
    assert undone["restored"] == 2 and _tree(photos) == before
    with pytest.raises(review_store.ReviewError, match="undone already"):
        s.undo(done["action_id"])


def test_linking_from_the_review_replaces_duplicates_by_links_and_undo_restores(reviewed):
    photos, data, _ = reviewed
    before = _tree(photos)
    s = _session(data)
    chelsea = _group_with(s, "chelsea.png")
    s.decide(chelsea["group_id"], "keep", _member(chelsea, "chelsea.png")["path"])  # keep the unedited one
    plan = s.plan("link")
    assert [os.path.basename(a["path"]) for a in plan["actions"]] == ["chelsea_bright.png"]
    s.act("link", plan["plan_id"])
    bright, orig = photos / "chelsea_bright.png", photos / "chelsea.png"
    assert os.path.samefile(bright, orig) or os.path.realpath(bright) == str(orig)
    s.undo(s.snapshot()["actions"][0]["action_id"])
    assert _tree(photos) == before and not os.path.samefile(bright, orig)


# ---------------------------------------------------------------------------------------------- the HTTP guard


@pytest.fixture
def client(reviewed):
    from starlette.testclient import TestClient

    from maya.review.server import create_app

    _, data, _ = reviewed
    session = _session(data)
    token = "t0ken-" + "x" * 30
    with TestClient(create_app(session, token, 8123), base_url="http://127.0.0.1:8123") as c:
        yield c, token, session


def test_requests_without_the_token_or_from_another_host_are_refused(client):
    c, token, session = client
    gid = next(iter(session.groups))
    for path in ("/", "/api/state", f"/preview/{gid}/0", "/?token=wrong"):
        r = c.get(path)
        assert r.status_code == 403 and "forbidden" in r.text, path
    assert c.get(f"/?token={token}", headers={"Host": "evil.example:8123"}).status_code == 403
    # the first load moves the token into a cookie, then everything works with it
    r = c.get(f"/?token={token}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert "httponly" in r.headers["set-cookie"].lower() and "samesite=strict" in r.headers["set-cookie"].lower()
    page = c.get("/")
    assert page.status_code == 200 and "Maya review" in page.text
    assert "script-src 'nonce-" in page.headers["content-security-policy"]
    assert c.get(f"/preview/{gid}/0").headers["content-type"] == "image/jpeg"
    assert len(c.get("/api/state").json()["groups"]) == 3


def test_a_change_needs_the_token_header_not_just_the_cookie(client, reviewed):
    c, token, session = client
    _, data, _ = reviewed
    c.get(f"/?token={token}")  # the cookie is set
    gid = next(iter(session.groups))
    forged = c.post("/api/decision", json={"group_id": gid, "decision": "confirm"})
    assert forged.status_code == 403
    assert _rows(data, "SELECT count(*) FROM review_decisions") == [(0,)]
    ok = c.post("/api/decision", json={"group_id": gid, "decision": "confirm"}, headers={"X-Maya-Token": token})
    assert ok.status_code == 200 and ok.json()["state"]["confirmed"]
    bad = c.post("/api/decision", json={"group_id": "x", "decision": "confirm"}, headers={"X-Maya-Token": token})
    assert bad.status_code == 400 and "group_id" in bad.json()["error"]
    assert _rows(data, "SELECT decision FROM review_decisions") == [("confirm",)]


def test_the_review_server_imports_neither_prefect_nor_torch():
    code = ("import sys; import maya.review.server, maya.review.session, maya.cli.review, maya.pairs.review; "
            "bad = [m for m in ('prefect', 'torch', 'transformers') if m in sys.modules]; assert not bad, bad")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_a_port_in_use_is_a_usage_error():
    from maya.review.server import PortError, listen

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        with pytest.raises(PortError, match="choose another --port"):
            listen(s.getsockname()[1])


# ---------------------------------------------------------------------------------------------- teaching


def test_pairs_import_from_review_makes_a_labelled_dataset_split_by_group(reviewed, capsys):
    from maya.cli.app import main

    photos, data, run_id = reviewed
    s = _session(data)
    astro = _group_with(s, "astronaut_q40.jpg")
    s.decide(astro["group_id"], "not_duplicate", _member(astro, "astronaut_small.jpg")["path"])
    chelsea = _group_with(s, "chelsea.png")
    s.decide(chelsea["group_id"], "confirm")
    s.decide(_group_with(s, "coffee.jpg")["group_id"], "confirm")  # byte-identical: nothing to learn

    assert main(["pairs", "import", "--from-review", "--dataset", "mine", "--data-dir", str(data)]) == 0
    assert "dataset 'mine': 3 pairs (2 positive, 1 negative" in capsys.readouterr().out
    rows = _rows(data, "SELECT a, b, label, kind, split, params FROM pairs WHERE dataset = 'mine' ORDER BY pair_id")
    sha = {Path(m["path"]).name: m["sha256"] for g in s.groups.values() for m in g["members"]}
    got = {(frozenset((a, b)), label) for a, b, label, *_ in rows}
    assert got == {(frozenset((sha["astronaut.jpg"], sha["astronaut_q40.jpg"])), True),
                   (frozenset((sha["astronaut.jpg"], sha["astronaut_small.jpg"])), False),
                   (frozenset((sha["chelsea.png"], sha["chelsea_bright.png"])), True)}
    assert {r[3] for r in rows} == {"review"} and {r[4] for r in rows} == {"val", "test"}
    by_group = {}
    for *_, sp, params in rows:
        by_group.setdefault(json.loads(params)["group_id"], set()).add(sp)
    assert all(len(v) == 1 for v in by_group.values())  # a group's pairs share a split
    assert _rows(data, "SELECT origin, source FROM datasets WHERE name = 'mine'") == [
        ("import", f"review of dedup run {run_id}")]

    # a second import under the same name needs --replace; no decisions at all is a clear error
    assert main(["pairs", "import", "--from-review", "--dataset", "mine", "--data-dir", str(data)]) == 2
    assert main(["pairs", "import", "--dataset", "none", "--data-dir", str(data)]) == 2
    assert "a CSV file of labelled pairs, or --from-review" in capsys.readouterr().err


def test_pairs_import_from_review_finds_files_the_review_moved(reviewed, capsys):
    from maya import store
    from maya.cli.app import main

    photos, data, _ = reviewed
    s = _session(data)
    astro = _group_with(s, "astronaut_q40.jpg")
    s.decide(astro["group_id"], "confirm")
    s.decide(_group_with(s, "chelsea.png")["group_id"], "group_wrong")
    s.act("move", s.plan("move")["plan_id"])
    assert not (photos / "astronaut_q40.jpg").exists()
    assert main(["pairs", "import", "--from-review", "--dataset", "moved", "--data-dir", str(data)]) == 0
    con = store.connect(data / "maya.duckdb", read_only=True)
    try:
        shas = {r[0] for r in con.execute("SELECT a FROM pairs UNION SELECT b FROM pairs").fetchall()}
        paths = store.image_paths(con, shas)
    finally:
        con.close()
    assert len(paths) == len(shas) == 5 and all(os.path.exists(p) for p in paths.values())


def _teach(data) -> None:
    """Review decisions on the reviewed folder (one small astronaut copy rejected, the chelsea group confirmed),
    imported as the labelled dataset "taught"."""
    from maya.cli.app import main

    s = _session(data)
    astro = _group_with(s, "astronaut_q40.jpg")
    s.decide(astro["group_id"], "not_duplicate", _member(astro, "astronaut_small.jpg")["path"])
    s.decide(_group_with(s, "chelsea.png")["group_id"], "confirm")
    assert main(["pairs", "import", "--from-review", "--dataset", "taught", "--data-dir", str(data)]) == 0


@pytest.mark.slow
def test_evaluate_accepts_a_dataset_made_from_review_decisions(reviewed, tiny_clip_dir, prefect_server, capsys):
    from maya.cli.app import main

    _, data, _ = reviewed
    _teach(data)
    code = main(["evaluate", "--dataset", "taught", "--data-dir", str(data), "--model", str(tiny_clip_dir),
                 "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    assert "dataset 'taught', 3 pairs" in capsys.readouterr().out
    assert _rows(data, "SELECT count(DISTINCT split) FROM scores JOIN pairs USING (dataset, pair_id) "
                       "WHERE dataset = 'taught'") == [(2,)]


@pytest.mark.slow
def test_a_dedup_calibrated_on_review_decisions_takes_the_rule_they_imply(reviewed, tiny_clip_dir, prefect_server,
                                                                        capsys):
    """review -> pairs import --from-review -> evaluate -> dedup --calibration: the embedding-only threshold
    is the one the taught val pairs imply (above every rejected pair's similarity), and the JSON says so."""
    from maya.cli.app import main

    photos, data, _ = reviewed
    _teach(data)
    assert main(["evaluate", "--dataset", "taught", "--data-dir", str(data), "--model", str(tiny_clip_dir),
                 "--device", "cpu"]) == 0, capsys.readouterr().err
    out = data / "calibrated.json"
    code = main(["dedup", str(photos), "--data-dir", str(data), "--model", str(tiny_clip_dir), "--device", "cpu",
                 "--calibration", "taught", "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    rule = json.loads(out.read_text())["rule"]
    (run_id,) = _rows(data, "SELECT max(run_id) FROM runs WHERE flow = 'evaluate' AND dataset = 'taught'")[0]
    assert f"calibration: evaluate run {run_id}" in rule["source"]
    val = _rows(data, "SELECT s.clip_similarity, p.label FROM scores s JOIN pairs p USING (dataset, pair_id) "
                      "WHERE s.run_id = ? AND p.split = 'val'", [run_id])
    strict = rule["clip_strict"]
    negatives = [sim for sim, label in val if not label]
    positives = [sim for sim, label in val if label]
    assert negatives or positives
    assert all(strict > sim for sim in negatives)  # no rejected pair of val is an embedding-only match
    if positives and not negatives:
        assert strict <= min(positives) + 1e-9  # the lowest threshold that keeps every taught duplicate


# ---------------------------------------------------------------------------------------------- in Chromium


def _start_review(data: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "maya.cli", "review", "--no-browser", "--port", str(port),
                             "--data-dir", str(data), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("open http"):
            return proc, line.split()[1]
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"maya review did not print its URL: {proc.stderr.read()[-2000:]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    """Nothing listens on the port any more, and a new review can listen on it (connections the browser had
    open may linger in TIME_WAIT, which SO_REUSEADDR, as servers use, lets past)."""
    from maya.review.server import listen

    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) == 0:
            return False
    listen(port).close()
    return True


@pytest.fixture
def browser():
    from tests.cdp import CHROMIUM, Browser

    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    with Browser() as b:
        yield b


@pytest.mark.slow
def test_in_chromium_the_page_shows_every_group_a_click_is_stored_files_move_and_come_back_and_sigterm_stops_it(
        reviewed, browser, tmp_path):
    photos, data, run_id = reviewed
    before = _tree(photos)
    proc, url = _start_review(data)
    port = int(url.split(":")[2].split("/")[0])
    try:
        bare = url.split("?")[0]
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bare + "api/state", timeout=10)
        assert refused.value.code == 403

        browser.goto(url)
        browser.wait_for("document.body.dataset.ready === '1' && [...document.images].every(i => i.complete)")
        seen = browser.eval("""({groups: document.querySelectorAll('section.group').length,
            images: document.images.length, decoded: [...document.images].filter(i => i.naturalWidth > 0).length,
            url: location.href})""")
        assert seen == {"groups": 3, "images": 7, "decoded": 7, "url": bare}

        # a real click on "Not a duplicate" of the small astronaut copy lands in DuckDB
        small = "figure[data-path$='/astronaut_small.jpg']"
        browser.click(f"{small} button[data-act=not_duplicate]")
        browser.wait_for(f"document.querySelector(\"{small}\").classList.contains('rejected')")
        rows = _rows(data, "SELECT decision, paths FROM review_decisions WHERE run_id = ?", [run_id])
        assert rows == [("not_duplicate", [str(photos / "astronaut_small.jpg")])]
        # keyboard: next group (j), "looks right" (c)
        browser.key("j")
        browser.key("c")
        browser.wait_for("document.querySelectorAll('section.group.confirmed').length === 1")
        assert _rows(data, "SELECT count(*) FROM review_decisions WHERE decision = 'confirm'") == [(1,)]
        # reload: the decisions are still shown
        browser.goto(bare)
        browser.wait_for("document.body.dataset.ready === '1'")
        assert browser.eval(f"document.querySelector(\"{small}\").classList.contains('rejected')")

        # compare two members at full size
        browser.click("section.group button[data-act=compare]")
        browser.wait_for("document.querySelectorAll('#compare.open img').length === 2 && "
                         "[...document.querySelectorAll('#compare img')].every(i => i.complete && i.naturalWidth > 0)")
        browser.key("Escape")
        browser.wait_for("!document.querySelector('.overlay.open')")

        # move from the page: dry run, confirm, then undo
        browser.click("#plan-move")
        browser.wait_for("!!document.querySelector('#plan.open #confirm-act')")
        assert _tree(photos) == before
        planned = browser.eval("document.querySelectorAll('#plan tr').length")
        browser.click("#confirm-act")
        browser.wait_for("!!document.querySelector('button[data-act=undo]')")
        assert len(before) - len(_tree(photos)) == planned >= 1
        browser.click("button[data-act=undo]")
        browser.wait_for("!document.querySelector('button[data-act=undo]') && document.body.dataset.ready === '1'")
        browser.wait_for("document.querySelector('#actions').textContent.includes('undone')")
        assert _tree(photos) == before

        shot = tmp_path / "review.png"
        browser.screenshot(shot)
        from PIL import Image
        import numpy as np

        with Image.open(shot) as im:
            assert np.asarray(im.convert("L"), dtype=float).std() > 20
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert rc == 0, proc.stderr.read()[-2000:]
    assert _port_free(port)


@pytest.mark.slow
def test_ctrl_c_stops_the_review_server_with_exit_status_0(reviewed):
    _, data, _ = reviewed
    proc, url = _start_review(data)
    port = int(url.split(":")[2].split("/")[0])
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())  # the redirect sets a cookie
    with opener.open(url, timeout=10) as r:
        assert r.status == 200 and b"Maya review" in r.read()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 0
    assert _port_free(port)
