"""One router per view of the explorer (listed in ``web.app.ROUTERS``)."""
