"""The opaque codes investigators read: those of the latest data release (issue 15, codes drawn per release).

``release_codec(kind)`` takes the release an investigator's request would read now; under the autouse
fixture in conftest.py that freezes a fresh release if the registry changed since the last one, so
compute codes after writing the rows a test reads.
"""

from api import releases
from api.deidentify import Codec

ANOTHER_RELEASES_KEY = "a key no release of this registry has"


def release_codec(kind):
    return Codec(releases.latest_release().codes_key, kind)


def another_releases_codec(kind):
    return Codec(ANOTHER_RELEASES_KEY, kind)
