"""Accounts and organisations: users, credentials, sessions, API keys, roles, activity.

Plain functions over a database session, without the web framework: the API's routes and
dependencies (``kombify.api.principal``, ``kombify.api.routes.auth`` …) call them, and so can
the CLI's admin commands and the tests. See docs/accounts.md.
"""
