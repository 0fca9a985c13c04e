"""The key the gateway signs its A2A push notifications with, and its public half as a JWKS
(``/.well-known/jwks.json``), so a webhook can tell a notification from the gateway from a
forgery (ADR 0037). One key per data dir, made at first need (0600), shared by its processes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey

KEY_FILE = "a2a-push-signing.jwk"
JWKS_PATH = "/.well-known/jwks.json"


def push_key(data_dir: Path) -> ECKey:
    """The signing key (an EC P-256 private key), made if there is none."""
    path = data_dir / KEY_FILE
    if not path.exists():
        made = ECKey.generate_key("P-256", private=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # (another process made it meanwhile)
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                json.dump(made.as_dict(private=True), fh)
    return ECKey.import_key(json.loads(path.read_text()))


def jwks(key: ECKey) -> dict[str, Any]:
    """The public key set webhooks verify signatures with."""
    public = dict(key.as_dict(private=False))
    public.update(kid=key.thumbprint(), use="sig", alg="ES256")
    return {"keys": [public]}
