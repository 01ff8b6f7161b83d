"""A person's token limited to one site sees and touches only that site (issue 12).

Every route that reads or changes a site's data asks here: filters are forced to
the caller's site, and asking for another site's data, device or alert is 403.
A caller without a site (the default) sees every site.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import Depends, HTTPException

from server.analytics.figures import Filters
from server.api.deps import Caller, FiltersDep, SessionDep, ViewerDep
from server.models import Device


def _refused(caller: Caller, what: str) -> HTTPException:
    return HTTPException(403, f"{caller.name} is limited to site {caller.site}: {what} is not")


def site_for(caller: Caller, asked: str | None) -> str | None:
    """The site a query may cover: what was asked, the caller's own when limited."""
    if caller.site is None:
        return asked
    if asked is not None and asked != caller.site:
        raise _refused(caller, f"site {asked[:64]!r}")
    return caller.site


def check_site(caller: Caller, site: str | None, what: str) -> None:
    """403 unless `caller` may see a thing (`what`, for the message) of `site`."""
    if caller.site is not None and site != caller.site:
        raise _refused(caller, what)


def scoped_filters(caller: ViewerDep, f: FiltersDep, session: SessionDep) -> Filters:
    """The filters with the caller's site forced; a `device` of another site is 403 too."""
    if caller.site is not None and f.device is not None:
        dev = session.get(Device, f.device)
        if dev is not None:
            check_site(caller, dev.site, f"device {f.device} (site {dev.site})")
    return dataclasses.replace(f, site=site_for(caller, f.site))


ScopedFiltersDep = Annotated[Filters, Depends(scoped_filters)]
