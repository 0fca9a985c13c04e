"""Server-side AWS Signature Version 4 (SigV4) verification for the AgentCore wire front.

Verifies the `Authorization: AWS4-HMAC-SHA256 ...` header of a request as an ASGI server sees it
(method, raw path bytes, query string bytes, header pairs, body), the way botocore's `SigV4Auth`
signs rest-json services: the canonical URI is the raw path with dot segments and empty segments
removed, percent-encoded again (so `a%2Fb` is signed as `a%252Fb`); the canonical query string is
each `key=value` pair decoded and re-encoded (RFC 3986 unreserved characters kept), sorted by key
then value; each signed header is its values trimmed, inner whitespace collapsed and joined with
`,`; the payload hash is the `x-amz-content-sha256` header when sent (it must be the body's), else
the SHA-256 of the body.

Errors are `SignatureError`s carrying the code and HTTP status AWS answers with (`code`,
`message`, `status`). Long-term keys only: a request with `X-Amz-Security-Token` is refused, and so
is query-string (presigned URL) authentication. Stdlib only; knows nothing of how secrets are
stored: `verify` takes the secret, or a function from access key id to secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from urllib.parse import quote_from_bytes, unquote_to_bytes

__all__ = [
    "ALGORITHM",
    "CLOCK_SKEW",
    "CONTENT_SHA256_MISMATCH",
    "INCOMPLETE_SIGNATURE",
    "INVALID_SIGNATURE",
    "MISSING_AUTHENTICATION_TOKEN",
    "SERVICE",
    "UNRECOGNIZED_CLIENT",
    "Authorization",
    "SecretLookup",
    "SignatureError",
    "canonical_request",
    "parse_authorization",
    "verify",
    "verify_async",
]

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "bedrock-agentcore"  # the signing name of both bedrock-agentcore and bedrock-agentcore-control
TERMINATOR = "aws4_request"
CLOCK_SKEW = 300.0  # seconds: "a request must reach AWS within five minutes of the time stamp in the request"

MISSING_AUTHENTICATION_TOKEN = "MissingAuthenticationTokenException"
INCOMPLETE_SIGNATURE = "IncompleteSignatureException"
INVALID_SIGNATURE = "InvalidSignatureException"
UNRECOGNIZED_CLIENT = "UnrecognizedClientException"
CONTENT_SHA256_MISMATCH = "XAmzContentSHA256Mismatch"

STATUS = {
    MISSING_AUTHENTICATION_TOKEN: 403,
    INCOMPLETE_SIGNATURE: 400,
    INVALID_SIGNATURE: 403,
    UNRECOGNIZED_CLIENT: 403,
    CONTENT_SHA256_MISMATCH: 400,
}

SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)

SecretLookup = Callable[[str], str | None]
"""Gives the secret access key of an access key id, or None for a key it does not know."""

_UNRESERVED = "-_.~"  # RFC 3986 unreserved, besides letters and digits (botocore's SAFE_CHARS)
_HEADER_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_ACCESS_KEY_ID = re.compile(r"[\x21-\x7e]{1,256}")
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}")
_SEPARATORS = re.compile(r"[\s,]+")
_PRESIGN_KEYS = frozenset({"X-Amz-Signature", "X-Amz-Credential", "X-Amz-Algorithm"})
_SHOWN = 120  # characters of a client's value quoted back in a message


class SignatureError(Exception):
    """A request whose signature cannot be accepted; `code` and `status` are what AWS answers."""

    def __init__(self, code: str, message: str, *, canonical_request: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = STATUS[code]
        # On a signature mismatch: the canonical request the server computed, for the operator's
        # logs (it holds nothing secret, only the request itself).
        self.canonical_request = canonical_request


@dataclass(frozen=True, slots=True)
class Authorization:
    """A parsed `Authorization: AWS4-HMAC-SHA256 ...` header and the request's `X-Amz-Date`."""

    access_key_id: str
    date: str  # the credential scope's date, YYYYMMDD
    region: str
    service: str
    terminator: str  # aws4_request
    signed_headers: tuple[str, ...]  # lowercase, sorted
    signature: str  # 64 lowercase hex digits
    amz_date: str  # X-Amz-Date as sent, YYYYMMDD'T'HHMMSS'Z'
    request_time: datetime  # X-Amz-Date, aware (UTC)

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/{self.terminator}"


def _show(value: str) -> str:
    return value if len(value) <= _SHOWN else value[:_SHOWN] + "..."


def _incomplete(message: str) -> SignatureError:
    return SignatureError(INCOMPLETE_SIGNATURE, message)


def _parse_amz_date(amz_date: str) -> datetime:
    digits = amz_date[:8] + amz_date[9:15]
    if not (
        len(amz_date) == 16
        and amz_date[8] == "T"
        and amz_date[15] == "Z"
        and digits.isascii()
        and digits.isdigit()
    ):
        raise _incomplete(
            f"X-Amz-Date must be a UTC time in ISO-8601 basic format, YYYYMMDD'T'HHMMSS'Z'; "
            f"got '{_show(amz_date)}'."
        )
    try:
        return datetime(
            int(digits[0:4]),
            int(digits[4:6]),
            int(digits[6:8]),
            int(digits[8:10]),
            int(digits[10:12]),
            int(digits[12:14]),
            tzinfo=UTC,
        )
    except ValueError:
        raise _incomplete(f"X-Amz-Date '{amz_date}' is not a valid date and time.") from None


def parse_authorization(authorization: str, amz_date: str) -> Authorization:
    """Parse an `Authorization` header value and the request's `X-Amz-Date`.

    Checks the form only (the algorithm, the three parameters, the credential's five parts, the
    signed header names, the signature's digits, the date's format); `verify` checks the values.
    Raises `SignatureError` (IncompleteSignatureException) naming what is wrong.
    """
    tokens = _SEPARATORS.split(authorization.strip())
    algorithm = tokens[0]
    if algorithm != ALGORITHM:
        if not algorithm:
            raise _incomplete("The Authorization header is empty.")
        raise _incomplete(
            f"Unsupported authorization algorithm '{_show(algorithm)}': only {ALGORITHM} "
            f"(AWS Signature Version 4) is accepted."
        )
    params: dict[str, str] = {}
    for token in tokens[1:]:
        if not token:
            continue
        key, equals, value = token.partition("=")
        if not equals:
            raise _incomplete(
                f"'{_show(token)}' not a valid key=value pair (missing equal-sign) in Authorization "
                f"header: '{_show(authorization)}'."
            )
        if key not in ("Credential", "SignedHeaders", "Signature"):
            raise _incomplete(f"Unknown parameter '{_show(key)}' in the Authorization header.")
        if key in params:
            raise _incomplete(f"The Authorization header has more than one '{key}' parameter.")
        params[key] = value
    missing = [key for key in ("Credential", "Signature", "SignedHeaders") if key not in params]
    if missing:
        raise _incomplete(
            " ".join(f"Authorization header requires '{key}' parameter." for key in missing)
            + f" Authorization={_show(authorization)}"
        )

    credential = params["Credential"]
    parts = credential.split("/")
    if len(parts) != 5:
        raise _incomplete(
            f"Credential '{_show(credential)}' is malformed: it must be "
            f"'<access key id>/<YYYYMMDD>/<region>/<service>/{TERMINATOR}'."
        )
    access_key_id, date, region, service, terminator = parts
    if not _ACCESS_KEY_ID.fullmatch(access_key_id):
        raise _incomplete(f"Credential '{_show(credential)}' has no valid access key id.")

    signed = params["SignedHeaders"]
    names = signed.split(";")
    if not all(_HEADER_NAME.fullmatch(name) for name in names):
        raise _incomplete(
            f"SignedHeaders '{_show(signed)}' is malformed: it must be lowercase header names "
            f"separated by ';'."
        )
    if names != sorted(set(names)):
        raise _incomplete(f"SignedHeaders '{_show(signed)}' must be sorted, each name once.")

    signature = params["Signature"]
    if not _SIGNATURE.fullmatch(signature):
        raise _incomplete("Signature must be 64 lowercase hexadecimal digits (HMAC-SHA256).")

    return Authorization(
        access_key_id=access_key_id,
        date=date,
        region=region,
        service=service,
        terminator=terminator,
        signed_headers=tuple(names),
        signature=signature,
        amz_date=amz_date,
        request_time=_parse_amz_date(amz_date),
    )


def _remove_dot_segments(path: bytes) -> bytes:
    # RFC 3986 5.2.4, and empty segments dropped too, as botocore's `remove_dot_segments` does.
    out: list[bytes] = []
    for segment in path.split(b"/"):
        if segment == b"..":
            if out:
                out.pop()
        elif segment and segment != b".":
            out.append(segment)
    first = b"/" if path.startswith(b"/") else b""
    last = b"/" if path.endswith(b"/") and out else b""
    return first + b"/".join(out) + last


def _canonical_uri(raw_path: bytes) -> str:
    path = raw_path.split(b"?", 1)[0]
    if not path:
        return "/"
    if not path.startswith(b"/") or b"//" in path or b"/." in path:
        path = _remove_dot_segments(path)
    # The path as sent is already percent-encoded; for every service but S3 it is encoded again.
    return quote_from_bytes(path, "/~")


def _canonical_query(query_string: bytes) -> tuple[str, frozenset[str]]:
    """The canonical query string, and the (encoded) names of its parameters."""
    if not query_string:
        return "", frozenset()
    pairs: list[tuple[str, str]] = []
    for part in query_string.split(b"&"):
        key, _, value = part.partition(b"=")
        pairs.append(
            (
                quote_from_bytes(unquote_to_bytes(key), _UNRESERVED),
                quote_from_bytes(unquote_to_bytes(value), _UNRESERVED),
            )
        )
    pairs.sort()
    return "&".join(f"{key}={value}" for key, value in pairs), frozenset(key for key, _ in pairs)


def _header_values(headers: Sequence[tuple[bytes, bytes]]) -> dict[str, list[str]]:
    # Header bytes are latin-1 on the wire (what http.client and urllib3 send str values as).
    values: dict[str, list[str]] = {}
    for name, value in headers:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        known = values.get(key)
        if known is None:
            values[key] = [text]
        else:
            known.append(text)
    return values


def _canonical(
    method: str,
    uri: str,
    query: str,
    values: dict[str, list[str]],
    signed_headers: Sequence[str],
    payload_hash: str,
) -> str:
    lines = []
    for name in signed_headers:
        sent = values.get(name)
        if sent is None:
            raise _incomplete(f"Header '{name}' is in SignedHeaders but not in the request.")
        lines.append(f"{name}:{','.join(' '.join(value.split()) for value in sent)}")
    return "\n".join(
        (method.upper(), uri, query, "\n".join(lines) + "\n", ";".join(signed_headers), payload_hash)
    )


def canonical_request(
    method: str,
    raw_path: bytes,
    query_string: bytes,
    headers: Sequence[tuple[bytes, bytes]],
    signed_headers: Sequence[str],
    payload_hash: str,
) -> str:
    """The SigV4 canonical request of a request as received (for tests and diagnosis)."""
    query, _ = _canonical_query(query_string)
    return _canonical(
        method, _canonical_uri(raw_path), query, _header_values(headers), signed_headers, payload_hash
    )


@lru_cache(maxsize=512)
def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = hmac.digest(f"AWS4{secret}".encode(), date.encode(), "sha256")
    key = hmac.digest(key, region.encode(), "sha256")
    key = hmac.digest(key, service.encode(), "sha256")
    return hmac.digest(key, TERMINATOR.encode(), "sha256")


def _compact(epoch: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(epoch))


def _skew_text(skew: float) -> str:
    return f"{int(skew // 60)} min." if skew % 60 == 0 else f"{skew:g} s"


def _check_scope(auth: Authorization, service: str, region: str | None) -> None:
    # AWS names every problem of the scope at once.
    problems = []
    if (region is not None and auth.region != region) or (
        region is None and not _REGION.fullmatch(auth.region)
    ):
        problems.append(f"Credential should be scoped to a valid region, not '{_show(auth.region)}'.")
    if auth.service != service:
        problems.append(f"Credential should be scoped to correct service: '{service}'.")
    if auth.terminator != TERMINATOR:
        problems.append(
            f"Credential should be scoped with a valid terminator: '{TERMINATOR}', "
            f"not '{_show(auth.terminator)}'."
        )
    if auth.date != auth.amz_date[:8]:
        problems.append(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{_show(auth.date)}' != '{auth.amz_date[:8]}', from '{auth.amz_date}'."
        )
    if problems:
        raise SignatureError(INVALID_SIGNATURE, " ".join(problems))


def _check_time(auth: Authorization, now: float, skew: float) -> None:
    signed_at = auth.request_time.timestamp()
    if signed_at < now - skew:
        raise SignatureError(
            INVALID_SIGNATURE,
            f"Signature expired: {auth.amz_date} is now earlier than {_compact(now - skew)} "
            f"({_compact(now)} - {_skew_text(skew)})",
        )
    if signed_at > now + skew:
        raise SignatureError(
            INVALID_SIGNATURE,
            f"Signature not yet current: {auth.amz_date} is still later than {_compact(now + skew)} "
            f"({_compact(now)} + {_skew_text(skew)})",
        )


def _payload_hash(values: dict[str, list[str]], body: bytes) -> str:
    computed = hashlib.sha256(body).hexdigest()
    sent = values.get("x-amz-content-sha256")
    if sent is None:
        return computed
    if len(sent) != 1:
        raise _incomplete("The request has more than one x-amz-content-sha256 header.")
    claimed = sent[0]
    if claimed == "UNSIGNED-PAYLOAD" or claimed.startswith("STREAMING-"):
        raise _incomplete(
            f"x-amz-content-sha256 '{_show(claimed)}' is not accepted: the payload must be signed "
            f"(the SHA-256 of the body, in hex)."
        )
    if claimed.lower() != computed:
        raise SignatureError(
            CONTENT_SHA256_MISMATCH,
            "The provided 'x-amz-content-sha256' header does not match what was computed "
            f"(the SHA-256 of the body is {computed}).",
        )
    return claimed  # signed as sent


def _one(values: dict[str, list[str]], name: str) -> str | None:
    sent = values.get(name)
    if sent is None:
        return None
    if len(sent) != 1:
        raise _incomplete(f"The request has more than one '{name}' header.")
    return sent[0]


@dataclass(frozen=True, slots=True)
class _Checked:
    """A request whose every check but the signature's has passed."""

    auth: Authorization
    values: dict[str, list[str]]
    query: str


def _check(
    headers: Sequence[tuple[bytes, bytes]],
    query_string: bytes,
    service: str,
    region: str | None,
    now: float | datetime | None,
    skew: float,
) -> _Checked:
    values = _header_values(headers)
    query, query_keys = _canonical_query(query_string)
    authorization = _one(values, "authorization")
    if "x-amz-security-token" in values or "X-Amz-Security-Token" in query_keys:
        raise SignatureError(
            UNRECOGNIZED_CLIENT,
            "The security token included in the request is invalid: session credentials "
            "(X-Amz-Security-Token) are not accepted, sign with a long-term access key.",
        )
    if query_keys & _PRESIGN_KEYS:
        raise _incomplete(
            "Query-string authentication (a presigned URL) is not supported: only the Authorization "
            "header is (AWS Signature Version 4)."
        )
    if authorization is None:
        raise SignatureError(
            MISSING_AUTHENTICATION_TOKEN,
            "Missing Authentication Token: the request must be signed with AWS Signature Version 4 "
            "(an Authorization header).",
        )
    amz_date = _one(values, "x-amz-date")
    if amz_date is None:
        raise _incomplete(
            "Authorization header requires existence of an 'X-Amz-Date' header "
            f"(a 'Date' header is not accepted). Authorization={_show(authorization)}"
        )
    auth = parse_authorization(authorization, amz_date)
    _check_scope(auth, service, region)
    for required in ("host", "x-amz-date"):
        if required not in auth.signed_headers:
            raise _incomplete(f"'{required}' must be a 'SignedHeader' in the AWS Authorization.")
    if now is None:
        current = time.time()
    elif isinstance(now, datetime):
        current = (now if now.tzinfo is not None else now.replace(tzinfo=UTC)).timestamp()
    else:
        current = now
    _check_time(auth, current, skew)
    return _Checked(auth, values, query)


def _check_signature(
    checked: _Checked, method: str, raw_path: bytes, body: bytes, secret: str | None
) -> None:
    auth = checked.auth
    if secret is None:
        raise SignatureError(
            UNRECOGNIZED_CLIENT,
            f"The security token included in the request is invalid: access key id "
            f"'{_show(auth.access_key_id)}' is not known.",
        )
    payload_hash = _payload_hash(checked.values, body)
    canonical = _canonical(
        method, _canonical_uri(raw_path), checked.query, checked.values, auth.signed_headers, payload_hash
    )
    string_to_sign = (
        f"{ALGORITHM}\n{auth.amz_date}\n{auth.scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    )
    key = _signing_key(secret, auth.date, auth.region, auth.service)
    expected = hmac.digest(key, string_to_sign.encode(), "sha256").hex()
    if not hmac.compare_digest(expected, auth.signature):
        raise SignatureError(INVALID_SIGNATURE, SIGNATURE_MISMATCH, canonical_request=canonical)


def verify(
    *,
    method: str,
    raw_path: bytes,
    query_string: bytes,
    headers: Sequence[tuple[bytes, bytes]],
    body: bytes,
    secret: str | SecretLookup,
    service: str = SERVICE,
    region: str | None = None,
    now: float | datetime | None = None,
    skew: float = CLOCK_SKEW,
) -> Authorization:
    """Verify a request's SigV4 `Authorization` header; return it parsed, or raise `SignatureError`.

    `raw_path` is the path exactly as received (ASGI `scope["raw_path"]`, which a mount leaves
    whole: the client signed the full path), `query_string` likewise (`scope["query_string"]`),
    `headers` the ASGI header pairs, `body` the whole body. `secret` is the secret access key, or
    a function giving it for the request's access key id (None: unknown key). A plain string is
    taken as the secret of whatever access key id the request names. `region`, when given, is the
    only region accepted in the credential scope; otherwise any well-formed region name is.
    `now` (epoch seconds or an aware datetime; default the clock) and `skew` (seconds either way)
    set the window X-Amz-Date must fall in. The secret is looked up only once every other check
    has passed; exceptions raised by a `secret` function propagate.
    """
    checked = _check(headers, query_string, service, region, now, skew)
    key_secret = secret if isinstance(secret, str) else secret(checked.auth.access_key_id)
    _check_signature(checked, method, raw_path, body, key_secret)
    return checked.auth


async def verify_async(
    *,
    method: str,
    raw_path: bytes,
    query_string: bytes,
    headers: Sequence[tuple[bytes, bytes]],
    body: bytes,
    secret: Callable[[str], Awaitable[str | None]],
    service: str = SERVICE,
    region: str | None = None,
    now: float | datetime | None = None,
    skew: float = CLOCK_SKEW,
) -> Authorization:
    """`verify`, with a secret lookup that must wait (a store, a vault)."""
    checked = _check(headers, query_string, service, region, now, skew)
    _check_signature(checked, method, raw_path, body, await secret(checked.auth.access_key_id))
    return checked.auth
