"""kombify as an identity provider for the tools it fronts (issue 12).

A portal signs short-lived SSO tokens for one tool and one organisation with rotating Ed25519
keys (:mod:`.signing_keys`, :mod:`.sso_tokens`) and publishes the public keys at
``/.well-known/jwks.json``; a kombify instance configured as a tool trusts one portal and maps
its tokens to the same user and organisation (:mod:`.sso_verifier`). The portal forwards
requests to its tools with such a token (:mod:`.tool_bridge`).

People sign in with an OpenID Connect provider or GitHub through :mod:`.oidc` and
:mod:`.github` (the flow), :mod:`.linking` (which user) and :mod:`.cli_login` (the CLI).
"""
