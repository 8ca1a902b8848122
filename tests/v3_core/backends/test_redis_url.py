"""redis+cluster:// URLs: seeds, credentials, and the mistakes refused before connecting."""

from __future__ import annotations

import pytest

from v3_core.backends.redis_client import ClusterUrl, is_cluster, parse_cluster_url


def test_seeds_in_the_order_given() -> None:
    cluster = parse_cluster_url("redis+cluster://10.0.0.1:7000,10.0.0.2:7001,[::1]:7002")
    assert cluster == ClusterUrl((("10.0.0.1", 7000), ("10.0.0.2", 7001), ("::1", 7002)))
    assert cluster.seed_urls[0] == "redis://10.0.0.1:7000/0"


def test_credentials_are_kept_for_every_seed_and_decoded() -> None:
    cluster = parse_cluster_url("redis+cluster://app:p%40ss@h1:7000,h2:7000/0")
    assert (cluster.username, cluster.password) == ("app", "p@ss")
    assert cluster.seed_urls == ["redis://app:p%40ss@h1:7000/0", "redis://app:p%40ss@h2:7000/0"]
    assert parse_cluster_url("redis+cluster://:secret@h1:7000").seed_urls == [
        "redis://:secret@h1:7000/0"
    ]


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("redis+cluster://", "at least one seed"),
        ("redis+cluster://h1", "not host:port"),
        ("redis+cluster://h1:port", "not host:port"),
        ("redis+cluster://h1:7000/2", "database 0 only"),
        ("redis+cluster://h1:7000?ssl=true", "database 0 only"),
        ("redis://h1:7000", "not a redis\\+cluster:// URL"),
    ],
)
def test_mistakes_are_refused(url: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_cluster_url(url)


def test_only_the_cluster_scheme_is_a_cluster() -> None:
    assert is_cluster("redis+cluster://h:1")
    assert not is_cluster("redis://h:1")
    assert not is_cluster("rediss://h:1")
