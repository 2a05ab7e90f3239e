"""What error pages and error reports may show: nothing secret.

Django's filter masks settings and request values whose names contain API, TOKEN, KEY,
SECRET, PASS, SIGNATURE or HTTP_COOKIE. ``DATABASE_URL`` and ``REDIS_URL`` carry their
password inside a URL, and the API's ``Authorization`` header carries a token, under names
it does not catch; this filter adds those names and masks the password of any URL it shows.
https://docs.djangoproject.com/en/5.2/howto/error-reporting/#filtering-error-reports
"""

from __future__ import annotations

import re
from typing import Any

from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

# user:password@ in a URL (any scheme): the password is replaced, the rest kept for
# diagnosis.
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@", re.I)


# Local variables masked by name in tracebacks: narrower than the settings' list, so that
# an idempotency_key or a sort_key stays readable.
_SECRET_VARIABLE = re.compile("SECRET|PASSW|TOKEN|AUTHORIZATION|CREDENTIAL|API_KEY", re.I)


def mask_url_passwords(text: str) -> str:
    """``text`` with the password of every URL in it replaced by asterisks."""
    return _URL_PASSWORD.sub(r"\g<scheme>\g<user>:********@", text)


class SecretSafeExceptionReporterFilter(SafeExceptionReporterFilter):
    hidden_settings = re.compile(
        "API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|AUTHORIZATION|CREDENTIAL|HMAC|DSN",
        flags=re.IGNORECASE,
    )

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        cleansed = super().cleanse_setting(key, value)
        if type(cleansed) is str:  # not a lazy object that only looks like one
            return mask_url_passwords(cleansed)
        return cleansed

    def get_traceback_frame_variables(self, request: Any, tb_frame: Any) -> Any:
        """A frame's local variables, masked like settings: by name, and URL passwords."""
        shown = []
        for name, value in super().get_traceback_frame_variables(request, tb_frame):
            if _SECRET_VARIABLE.search(name):
                value = self.cleansed_substitute
            elif type(value) is str:
                value = mask_url_passwords(value)
            shown.append((name, value))
        return shown


class SecretSafeExceptionReporter(ExceptionReporter):
    """The debug page and error e-mails: the exception's own message is masked too (a
    connection error may quote the URL it failed to reach)."""

    def get_traceback_data(self) -> dict[str, Any]:
        data = super().get_traceback_data()
        if data.get("exception_value") is not None:
            data["exception_value"] = mask_url_passwords(str(data["exception_value"]))
        return data
