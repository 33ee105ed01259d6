"""Ticket codes: the QR payload, signed with Ed25519 so that a scanner holding only the
public key can refuse a forged or altered code, offline."""

import base64
import binascii
import hashlib
import uuid

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

VERSION = b"BO1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TicketSigner:
    """Signs ticket ids; the key is derived from the deployment's signing secret."""

    def __init__(self, secret: str) -> None:
        seed = hashlib.sha256(b"boxoffice ticket codes\x00" + secret.encode()).digest()
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self.public_key = self._key.public_key()

    def sign(self, ticket_id: uuid.UUID) -> str:
        payload = VERSION + ticket_id.bytes
        return f"{_b64(payload)}.{_b64(self._key.sign(payload))}"

    def verify(self, code: str) -> uuid.UUID | None:
        """The ticket id in a genuine code; None for anything forged, altered or garbled."""
        payload_text, dot, signature_text = code.strip().partition(".")
        if not dot or len(code) > 200:
            return None
        try:
            payload, signature = _unb64(payload_text), _unb64(signature_text)
            self.public_key.verify(signature, payload)
        except (binascii.Error, ValueError, InvalidSignature):
            return None
        if len(payload) != len(VERSION) + 16 or not payload.startswith(VERSION):
            return None
        return uuid.UUID(bytes=payload[len(VERSION) :])
