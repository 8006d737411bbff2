"""Identity beyond passwords: login with OpenID Connect and GitHub (:mod:`.oidc`), and SSO
tokens for the tools kombify fronts."""
