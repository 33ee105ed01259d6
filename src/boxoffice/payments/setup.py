"""The payment set-up of one process, built from settings: which providers, where they are,
where they call back, and the timings the payment jobs keep.

The web process and the worker each build theirs at start-up (`configure`); the worker's
payment jobs read it back with `configured()`.
"""

from dataclasses import dataclass, field
from datetime import timedelta

import httpx

from boxoffice.config import Settings
from boxoffice.payments.providers import CallbackUrls, Providers


@dataclass
class Payments:
    providers: Providers = field(default_factory=Providers)
    hold_ttl: timedelta = timedelta(minutes=10)
    payment_window: timedelta = timedelta(minutes=15)
    poll_after: timedelta = timedelta(seconds=30)


def simulator_url(settings: Settings, provider: str) -> str | None:
    """Where the simulator of `provider` is served (by this site, or by `boxoffice simulate
    all` for several web processes), when one is."""
    base = settings.simulator_url or (settings.public_url if settings.run_simulators else None)
    return f"{base.rstrip('/')}/_sim/{provider}" if base else None


def build(settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None) -> Payments:
    """The providers the settings make available. A provider is on when its base URL is
    set, or when the simulators are mounted (then it talks to its simulator here)."""
    from boxoffice.payments.momo.provider import MomoProvider
    from boxoffice.payments.mpesa.provider import MpesaProvider

    callback_base = settings.payment_callback_url or settings.public_url
    providers = Providers(callbacks=CallbackUrls(settings.signing_secret, callback_base))
    momo_url = settings.momo_base_url or simulator_url(settings, "momo")
    if momo_url:
        simulated = settings.momo_base_url is None
        any_currency = simulated and settings.simulator_momo_any_currency
        providers.register(
            MomoProvider(
                settings, base_url=momo_url, any_currency=any_currency, transport=transport
            )
        )
    mpesa_url = settings.mpesa_base_url or simulator_url(settings, "mpesa")
    if mpesa_url:
        providers.register(MpesaProvider(settings, base_url=mpesa_url, transport=transport))
    return Payments(
        providers=providers,
        hold_ttl=timedelta(seconds=settings.hold_ttl),
        payment_window=timedelta(seconds=settings.payment_window),
        poll_after=timedelta(seconds=settings.payment_poll_after),
    )


_configured = Payments()


def configure(payments: Payments) -> None:
    global _configured
    _configured = payments


def configured() -> Payments:
    return _configured
