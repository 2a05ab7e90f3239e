"""Settings of the web process the console bench and the screenshots start: production's,
with static files stored without a manifest.

The manifest's post-processing rewrites every ``sourceMappingURL`` and fails on a vendored
script whose source map is not shipped (Chart.js's ``chart.umd.min.js``); the pages and
their timings do not depend on hashed file names.
"""

from nventory.settings import *  # noqa: F403

STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
