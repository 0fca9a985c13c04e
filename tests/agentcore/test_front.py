"""What the AgentCore front reads of a request is what its signature covers."""

from __future__ import annotations

from gateway.agentcore._front import _query


def test_a_plus_in_the_query_is_a_plus_as_the_signature_verifier_reads_it() -> None:
    assert _query(b"nextToken=a+b&maxResults=5") == [("nextToken", "a+b"), ("maxResults", "5")]
    assert _query(b"nextToken=a%2Bb%20c") == [("nextToken", "a+b c")]
    assert _query(b"") == []
