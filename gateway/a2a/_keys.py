"""The key the gateway signs its A2A push notifications with, and its public half as a JWKS
(``/.well-known/jwks.json``), so a webhook can tell a notification from the gateway from a
forgery (ADR 0037). One key per data dir, made at first need (0600), shared by its processes."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey

KEY_FILE = "a2a-push-signing.jwk"
JWKS_PATH = "/.well-known/jwks.json"


def push_key(data_dir: Path) -> ECKey:
    """The signing key (an EC P-256 private key), made if there is none."""
    path = data_dir / KEY_FILE
    if not path.exists():  # written whole under another name, then linked: never read half-written
        made = ECKey.generate_key("P-256", private=True)
        partial = data_dir / f".{KEY_FILE}.{os.getpid()}-{secrets.token_hex(4)}"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(made.as_dict(private=True), fh)
        try:
            os.link(partial, path)
        except FileExistsError:  # (another process made it meanwhile: that one stands)
            pass
        finally:
            partial.unlink()
    return ECKey.import_key(json.loads(path.read_text()))


def jwks(key: ECKey) -> dict[str, Any]:
    """The public key set webhooks verify signatures with."""
    public = dict(key.as_dict(private=False))
    public.update(kid=key.thumbprint(), use="sig", alg="ES256")
    return {"keys": [public]}
