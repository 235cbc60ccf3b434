from __future__ import annotations

from pathlib import Path

import pytest

from loopml.config import Settings
from loopml.errors import InvalidInput, StoreUnavailable
from loopml.server.app import create_app
from loopml.server.auth import bearer_secret, required_role
from loopml.server.routers.artifacts import UPLOAD_PATTERN, content_disposition
from loopml.server.routers.runs import decode_page_token, encode_page_token
from loopml.server.run import hosts_for_bind, is_loopback
from loopml.server.security import HostPolicy, split_host
from loopml.store.rest import RestTrackingStore


@pytest.mark.parametrize(
    ("header", "host"),
    [
        ("127.0.0.1:5000", "127.0.0.1"),
        ("[::1]:5000", "::1"),
        ("::1", "::1"),
        ("LocalHost", "localhost"),
        ("", ""),
    ],
)
def test_split_host(header: str, host: str) -> None:
    assert split_host(header) == host


def test_host_policy_defaults_and_extras() -> None:
    policy = HostPolicy(["ml.example.com", "*.corp.example"])
    for host in (
        "127.0.0.1",
        "localhost",
        "::1",
        "testserver",
        "ml.example.com",
        "a.corp.example",
        "localhost.",
    ):
        assert policy.allows(host), host
    for host in ("evil.com", "corp.example", "127.0.0.1.evil.com", ""):
        assert not policy.allows(host), host
    assert HostPolicy(["*"]).allows("anything.at.all")


def test_origin_policy() -> None:
    policy = HostPolicy(["*"])
    assert policy.allows_origin("http://127.0.0.1:5000", "127.0.0.1:5000")
    assert policy.allows_origin("http://localhost:3000", "127.0.0.1:5000")
    # "*" opens the Host check only; a foreign page still may not write.
    assert not policy.allows_origin("http://evil.com", "10.0.0.5:5000")
    assert policy.allows_origin("http://10.0.0.5:5000", "10.0.0.5:5000")
    assert not policy.allows_origin("null", "127.0.0.1:5000")
    assert not policy.allows_origin("file://", "127.0.0.1:5000")


@pytest.mark.parametrize(
    ("header", "secret"),
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        (None, None),
        ("", None),
    ],
)
def test_bearer_secret(header: str | None, secret: str | None) -> None:
    assert bearer_secret(header) == secret


def test_required_role_by_method() -> None:
    assert [required_role(m) for m in ("GET", "HEAD", "OPTIONS")] == ["reader"] * 3
    assert [required_role(m) for m in ("POST", "PUT", "PATCH", "DELETE")] == ["writer"] * 4


def test_page_tokens_round_trip_and_reject_forgeries() -> None:
    assert decode_page_token(encode_page_token(1234)) == 1234
    for bad in ("", "!!!", "bm90IGpzb24=", encode_page_token(-1), "eyJvZmZzZXQiOiAieCJ9"):
        with pytest.raises(InvalidInput) as caught:
            decode_page_token(bad)
        assert caught.value.field == "page_token"


def test_content_disposition_quotes_names() -> None:
    assert content_disposition("a.txt") == "attachment; filename=\"a.txt\"; filename*=UTF-8''a.txt"
    header = content_disposition('résumé "1".pdf')
    assert 'filename="r_sum_ _1_.pdf"' in header
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9%20%221%22.pdf" in header


def test_upload_pattern() -> None:
    assert UPLOAD_PATTERN.match("PUT /api/v1/runs/abc/artifacts/x.bin")
    assert not UPLOAD_PATTERN.match("GET /api/v1/runs/abc/artifacts/x.bin")
    assert not UPLOAD_PATTERN.match("PUT /api/v1/runs/abc/artifact-index/x.bin")


def test_bind_hosts() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    assert hosts_for_bind("127.0.0.1") == []
    assert hosts_for_bind("10.1.2.3", ["ml.example.com"]) == ["ml.example.com", "10.1.2.3"]
    assert len(hosts_for_bind("0.0.0.0")) >= 1


def test_server_refuses_a_tracking_uri(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, tracking_uri="http://127.0.0.1:5000")
    with pytest.raises(InvalidInput) as caught:
        create_app(settings)
    assert caught.value.field == "tracking_uri"


def test_rest_store_names_the_url_it_cannot_reach() -> None:
    from conftest import free_port

    url = f"http://127.0.0.1:{free_port()}"
    with RestTrackingStore(url, timeout=2) as store:
        with pytest.raises(StoreUnavailable, match=url):
            store.list_experiments()
        with pytest.raises(StoreUnavailable, match=url):
            store.open_artifact("a" * 32, "x.txt")


def test_rest_store_refuses_other_schemes() -> None:
    with pytest.raises(InvalidInput):
        RestTrackingStore("ftp://example.com")
