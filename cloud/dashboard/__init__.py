"""The operators' dashboard: static pages served by the cloud app, fed by the HTTP API.

``pages.py`` serves the single-page app (``static/``: hand-written HTML, CSS and JavaScript, no
CDN, no build step) at ``/dashboard``; ``api.py`` adds the read endpoints only the pages need
(who am I, the fleet at a glance, one device's latest sample, cascade health over time;
``queries.py`` holds their SQL); ``events.py`` streams server-sent events so open pages update
without reloading. Everything goes through the same API tokens as the rest of ``/api``.
"""
