"""Each discovery source against a loopback feed server: a good feed, a malformed one, a slow
server, a huge response, a 404 — plus hostile XML, retries, dedupe, the inbox, and one failing
source never stopping the others."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nettrace_dagster.audit import read_audit
from nettrace_dagster.discovery.opportunities import discover, store_for
from nettrace_dagster.discovery.sources import SOURCES, sample_bytes
from nettrace_dagster.settings import Settings, load_settings
from tests.fakes.feeds import FakeFeeds

FETCHED = [name for name, spec in SOURCES.items() if spec.kind != "inbox"]
# What each sample holds (counted by hand in nettrace_dagster/data/feeds/).
SAMPLE_ITEMS = {"arxiv": 4, "reddit": 3, "sec": 2, "upgrades": 2, "defillama": 3, "social": 2}
OFF = {f"DISCOVERY_{n.upper()}_ENABLED": "0" for n in SOURCES}


def settings_for(home: Path, **env: str) -> Settings:
    base = {"NETTRACE_HOME": str(home), "DISCOVERY_READ_TIMEOUT_S": "0.5", "DISCOVERY_CONNECT_TIMEOUT_S": "0.5",
            "DISCOVERY_MAX_RETRIES": "0"}
    return load_settings({**base, **env})


def only(home: Path, name: str, url: str, **env: str) -> Settings:
    return settings_for(home, **{**OFF, f"DISCOVERY_{name.upper()}_ENABLED": "1",
                                 f"DISCOVERY_{name.upper()}_URL": url, **env})


@pytest.fixture
def fake():
    with FakeFeeds() as server:
        yield server


def report_of(settings: Settings, name: str):
    (report,) = [r for r in discover(settings) if r.source == name]
    return report


@pytest.mark.parametrize("name", FETCHED)
def test_a_good_feed_is_stored_with_provenance(name: str, fake: FakeFeeds, tmp_path: Path) -> None:
    url = fake.route(f"/{name}", body=sample_bytes(SOURCES[name].sample))
    settings = only(tmp_path, name, url, NETTRACE_PROFILE="live")  # a set URL is fetched on any profile
    report = report_of(settings, name)
    assert (report.failure, report.fetched, report.new) == (None, SAMPLE_ITEMS[name], SAMPLE_ITEMS[name])
    assert fake.hits[f"/{name}"] == 1
    stored = store_for(settings).read(name)
    assert stored.height == SAMPLE_ITEMS[name]
    assert set(stored["source"]) == {name} and set(stored["feed"]) == {url}
    assert stored["content_hash"].str.len_chars().min() == 64 and stored["fetched_at"].null_count() == 0
    assert stored["title"].str.len_chars().min() > 0


@pytest.mark.parametrize("name", FETCHED)
def test_a_malformed_feed_fails_its_source_in_one_line(name: str, fake: FakeFeeds, tmp_path: Path) -> None:
    url = fake.route(f"/{name}", body=b"<feed><entry><title>cut off", content_type="application/atom+xml")
    report = report_of(only(tmp_path, name, url), name)
    assert report.failure and "\n" not in report.failure and report.new == 0
    assert "malformed" in report.failure


@pytest.mark.parametrize("name", FETCHED)
def test_a_slow_server_times_out(name: str, fake: FakeFeeds, tmp_path: Path) -> None:
    url = fake.route(f"/{name}", body=sample_bytes(SOURCES[name].sample), delay=1.5)
    report = report_of(only(tmp_path, name, url), name)  # the server answers after 1.5 s: too late
    assert report.failure == f"{url}: read timeout (0.5 s)" and report.new == 0


@pytest.mark.parametrize("name", FETCHED)
def test_a_huge_response_is_cut_at_the_cap(name: str, fake: FakeFeeds, tmp_path: Path) -> None:
    url = fake.route(f"/{name}", stream=10_000, chunks=200)  # 2 MB, chunked, no length given
    report = report_of(only(tmp_path, name, url, DISCOVERY_MAX_BYTES="50000"), name)
    assert report.failure == f"{url}: response exceeds the 50,000-byte cap (DISCOVERY_MAX_BYTES); stopped reading"


def test_a_declared_length_over_the_cap_is_refused_before_reading(fake: FakeFeeds, tmp_path: Path) -> None:
    url = fake.route("/big", body=b"x" * 60_000)
    report = report_of(only(tmp_path, "arxiv", url, DISCOVERY_MAX_BYTES="50000"), "arxiv")
    assert report.failure == f"{url}: response of 60,000 bytes is over the 50,000-byte cap (DISCOVERY_MAX_BYTES)"


@pytest.mark.parametrize("name", FETCHED)
def test_a_404_fails_its_source(name: str, fake: FakeFeeds, tmp_path: Path) -> None:
    report = report_of(only(tmp_path, name, fake.url("/missing")), name)
    assert report.failure == f"{fake.url('/missing')}: HTTP 404 Not Found"


def test_retries_are_bounded_and_a_transient_error_recovers(fake: FakeFeeds, tmp_path: Path) -> None:
    fake.route("/flaky", status=503, times=2)
    url = fake.route("/flaky", body=sample_bytes("arxiv.xml"))
    report = report_of(only(tmp_path, "arxiv", url, DISCOVERY_MAX_RETRIES="2"), "arxiv")
    assert (report.failure, report.new, fake.hits["/flaky"]) == (None, 4, 3)

    fake.route("/down", status=503)
    report = report_of(only(tmp_path / "b", "arxiv", fake.url("/down"), DISCOVERY_MAX_RETRIES="1"), "arxiv")
    assert report.failure == f"{fake.url('/down')}: HTTP 503 Service Unavailable after 2 tries"
    assert fake.hits["/down"] == 2  # one try and one retry, no more


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<rss version="2.0"><channel><title>x</title><item><title>&lol3;</title><description>d</description></item></channel></rss>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><title>x</title><item><title>&xxe;</title><description>d</description></item></channel></rss>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["billion_laughs", "external_entity"])
def test_hostile_xml_is_refused(body: bytes, fake: FakeFeeds, tmp_path: Path) -> None:
    url = fake.route("/evil", body=body)
    settings = only(tmp_path, "reddit", url)
    report = report_of(settings, "reddit")
    assert report.failure == f"{url}: hostile XML refused: the document declares DTD entities " \
                             "(billion laughs / external entity pattern)"
    assert store_for(settings).read().height == 0


def test_a_body_naming_a_local_file_is_not_read_as_the_feed(fake: FakeFeeds, tmp_path: Path) -> None:
    # feedparser.parse(bytes) tries open(bytes) first: the body must never be taken for a path.
    secret = tmp_path / "local.xml"
    secret.write_bytes(sample_bytes("arxiv.xml"))
    url = fake.route("/path", body=str(secret).encode())
    report = report_of(only(tmp_path / "h", "arxiv", url), "arxiv")
    assert report.new == 0 and report.failure.startswith(f"{url}: malformed feed")  # the path, parsed as XML


def test_a_failing_source_never_stops_the_others_and_stored_items_stay(fake: FakeFeeds, tmp_path: Path) -> None:
    good = fake.route("/arxiv", body=sample_bytes("arxiv.xml"))
    first = settings_for(tmp_path, **{**OFF, "DISCOVERY_ARXIV_ENABLED": "1", "DISCOVERY_REDDIT_ENABLED": "1",
                                      "DISCOVERY_ARXIV_URL": good, "DISCOVERY_REDDIT_URL": fake.route(
                                          "/reddit", body=sample_bytes("reddit.xml"), times=1)})
    assert [r.new for r in discover(first)][:2] == [4, 3]
    fake.route("/reddit", status=404)  # reddit now fails, arxiv gains nothing new
    reports = {r.source: r for r in discover(first)}
    assert reports["reddit"].failure.endswith("HTTP 404 Not Found") and reports["arxiv"].failure is None
    assert reports["arxiv"].fetched == 4
    assert store_for(first).read("reddit").height == 3  # what reddit gave before is still there


def test_refetching_adds_nothing(fake: FakeFeeds, tmp_path: Path) -> None:
    url = fake.route("/arxiv", body=sample_bytes("arxiv.xml"))
    settings = only(tmp_path, "arxiv", url)
    assert report_of(settings, "arxiv").new == 4
    second = report_of(settings, "arxiv")
    assert (second.fetched, second.new) == (4, 0)
    assert store_for(settings).read().height == 4
    assert len(list(read_audit(settings.audit_dir, "strategy_opportunities"))) == 4
    ids = store_for(settings).read()["opportunity_id"]
    assert ids.n_unique() == 4


def test_local_profile_reads_the_shipped_samples_without_network(tmp_path: Path) -> None:
    reports = discover(settings_for(tmp_path))
    got = {r.source: r.new for r in reports if r.source in SAMPLE_ITEMS}
    assert got == SAMPLE_ITEMS
    assert all(r.failure is None for r in reports)


def test_live_profile_without_a_social_url_says_so(tmp_path: Path) -> None:
    report = report_of(settings_for(tmp_path, **{**OFF, "DISCOVERY_SOCIAL_ENABLED": "1"}, NETTRACE_PROFILE="live"),
                       "social")
    assert report.failure == "no URL set (DISCOVERY_SOCIAL_URL) on the live profile"


def test_a_disabled_source_is_not_read(fake: FakeFeeds, tmp_path: Path) -> None:
    url = fake.route("/arxiv", body=sample_bytes("arxiv.xml"))
    report = report_of(settings_for(tmp_path, DISCOVERY_ARXIV_ENABLED="0", DISCOVERY_ARXIV_URL=url), "arxiv")
    assert (report.enabled, report.fetched, fake.hits["/arxiv"]) == (False, 0, 0)


def test_the_inbox_stores_good_files_and_sets_bad_ones_aside(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, **{**OFF, "DISCOVERY_INBOX_ENABLED": "1"})
    inbox = tmp_path / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "idea.md").write_text("# ETH momentum on 4h bars\n\nBuy ETH when the 4-hour momentum turns up.\n")
    (inbox / "paper.json").write_text(json.dumps({"title": "SOL mean reversion", "text": "fade 2 sigma moves",
                                                  "url": "https://example.org/sol"}))
    (inbox / "broken.json").write_text("{not json")
    (inbox / "notes.bin").write_bytes(b"\x00")  # not a submission type: left alone
    report = report_of(settings, "inbox")
    assert (report.fetched, report.new) == (2, 2)
    assert report.failure.startswith("1 file(s) refused, moved to inbox/rejected/: broken.json: malformed JSON")
    assert sorted(p.name for p in (inbox / "done").iterdir()) == ["idea.md", "paper.json"]
    assert [p.name for p in (inbox / "rejected").iterdir()] == ["broken.json"]
    assert (inbox / "notes.bin").exists()
    titles = sorted(store_for(settings).read("inbox")["title"])
    assert titles == ["ETH momentum on 4h bars", "SOL mean reversion"]


def test_entities_hidden_behind_a_comment_are_refused_too() -> None:
    from nettrace_dagster.discovery.parse import FeedError, parse_feed

    body = BILLION_LAUGHS.replace(b"<!DOCTYPE", b"<!-- <rss> --><!DOCTYPE", 1)
    with pytest.raises(FeedError, match="hostile XML refused"):
        parse_feed(body)
