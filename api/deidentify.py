"""What investigators get instead of identifiers and calendar dates (issue 10).

The model is the ACS NSQIP Participant Use Data File: no dates, only whole days
counted from the index operation, the operation's year, and no hospital or
surgeon identifier (ACS NSQIP, "User Guide for the Participant Use Data File",
variables such as ``OPERYR`` and ``DOpertoD`` "days from operation to death").
Here the index event is the implantation (day 0); a patient's own dates
(systemic therapy lines) count from the patient's first implantation.

**Opaque codes.** Every row an investigator sees, and every reference to a row
(patient, implantation, surgeon, centre), is a code such as ``P-7QK2M4XZB5RLA``
instead of its primary key, centre code, surgeon code or pseudonym. A code is a
keyed pseudo-random permutation of the primary key:

- a balanced Feistel network over 64 bits (two 32-bit halves) with 4 rounds,
  whose round function is HMAC-SHA256(key, round || right half) truncated to
  32 bits. Four rounds of a pseudo-random function make a strong pseudo-random
  permutation: M. Luby and C. Rackoff, "How to construct pseudorandom
  permutations from pseudorandom functions", SIAM J. Comput. 17(2), 1988,
  373-386 (the same construction underlies NIST SP 800-38G's format-preserving
  FF1/FF3 modes);
- the key is HMAC-SHA256(the release's codes key, "hai-registry.deidentify|<kind>"):
  codes are drawn per data release (issue 15, ``reports.releases``; the codes key is
  random, drawn at the freeze and never shown). Every investigator reading one
  release gets the same code for a row, on every request, so two analysts of one
  release can compare notes; another release gives unrelated codes, so releases
  cannot be linked row by row; codes of different kinds of row (a patient and an
  implantation with the same id) are unrelated;
- printed as the kind's prefix, "-" and the 64-bit block in base32 (RFC 4648,
  13 letters and digits, no padding).

A permutation is reversible, so the API decodes the codes investigators send
back (detail URLs, ``?centre=``, ``?patient=``, ``?implantation=``). Changing
SECRET_KEY changes no code: a release answers the same next year.
"""

import base64
import hashlib
import hmac
import re

from rest_framework import exceptions

from sites import access

# Kind -> prefix. Centres, surgeons, patients and implantations have one letter (C-, S-, P-, I-);
# the implantations' records two.
PREFIXES = {
    "centre": "C",
    "surgeon": "S",
    "patient": "P",
    "implantation": "I",
    "treatment": "TX",
    "complication": "CX",
    "follow-up": "FU",
    "liver-test": "LT",
    "perfusion-check": "PC",
    "systemic-therapy-line": "SL",
    "systemic-toxicity": "TO",
    "readmission": "RA",
}
ROUNDS = 4
MASK32 = 0xFFFFFFFF
CODE_LENGTH = 13  # ceil(64 / 5) base32 characters
_CODE = re.compile(r"^(?P<prefix>[A-Z]{1,2})-(?P<body>[A-Z2-7]{13})$")


def code_pattern(kind):
    """The regular expression a code of ``kind`` matches (for the OpenAPI description)."""
    return rf"^{PREFIXES[kind]}-[A-Z2-7]{{{CODE_LENGTH}}}$"


class Codec:
    """Opaque codes of one kind of row in one release: ``encode(pk)`` and ``decode(code)``."""

    def __init__(self, codes_key, kind):
        self.kind = kind
        self.prefix = PREFIXES[kind]
        key = hmac.new(codes_key.encode(), f"hai-registry.deidentify|{kind}".encode(), hashlib.sha256).digest()
        self._mac = hmac.new(key, digestmod=hashlib.sha256)

    def _round(self, number, half):
        mac = self._mac.copy()
        mac.update(bytes([number]) + half.to_bytes(4, "big"))
        return int.from_bytes(mac.digest()[:4], "big")

    def _permute(self, value):
        left, right = value >> 32, value & MASK32
        for number in range(ROUNDS):
            left, right = right, left ^ self._round(number, right)
        return (left << 32) | right

    def _unpermute(self, value):
        left, right = value >> 32, value & MASK32
        for number in reversed(range(ROUNDS)):
            left, right = right ^ self._round(number, left), left
        return (left << 32) | right

    def encode(self, pk):
        if pk is None:
            return None
        block = self._permute(int(pk)).to_bytes(8, "big")
        return f"{self.prefix}-{base64.b32encode(block).decode().rstrip('=')}"

    def decode(self, code):
        """The primary key behind ``code``, or None if it is not a well-formed code of this kind."""
        match = _CODE.match(code or "")
        if match is None or match["prefix"] != self.prefix:
            return None
        try:
            block = base64.b32decode(match["body"] + "===")
        except ValueError:
            return None
        # Only the canonical spelling (the last letter's unused bit is zero) is a code.
        if base64.b32encode(block).decode().rstrip("=") != match["body"]:
            return None
        pk = self._unpermute(int.from_bytes(block, "big"))
        return pk if 0 < pk < 2**63 else None


class Deidentifier:
    """One release's codecs."""

    def __init__(self, release):
        self.release = release
        self._codecs = {}

    def codec(self, kind):
        if kind not in self._codecs:
            self._codecs[kind] = Codec(self.release.codes_key, kind)
        return self._codecs[kind]

    def encode(self, kind, pk):
        return self.codec(kind).encode(pk)

    def decode(self, kind, code):
        return self.codec(kind).decode(code)


_deidentifiers = {}


def for_release(release):
    """The release's de-identifier (kept per process: a release never changes)."""
    deidentifier = _deidentifiers.get(release.storage)
    if deidentifier is None:
        if len(_deidentifiers) > 8:
            _deidentifiers.clear()
        deidentifier = _deidentifiers[release.storage] = Deidentifier(release)
    return deidentifier


def for_request(request):
    """The de-identifier of the release the request reads if its user must get de-identified data, else None.

    An investigator's request always reads a release (``api.releases``); one that reached here without
    one is refused rather than answered with live rows or unkeyed codes.
    """
    if request is None or not access.must_deidentify(request.user):
        return None
    release = getattr(request, "hai_release", None)
    if release is None:
        raise exceptions.PermissionDenied("Investigators read data releases only, and this request names none.")
    return for_release(release)


def ordering_salt(request):
    """The release's salt for the order rows are listed in (no dates, no ids: see api.pagination)."""
    release = getattr(request, "hai_release", None)
    if release is None:
        raise exceptions.PermissionDenied("Investigators read data releases only, and this request names none.")
    return hmac.new(release.codes_key.encode(), b"hai-registry.ordering", hashlib.sha256).hexdigest()[:16]
