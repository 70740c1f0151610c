"""Sign-in with OpenID Connect providers (and GitHub's OAuth 2): provider
settings, the protocol clients, the browser flow and linked identities
(docs/accounts.md, "Sign-in providers")."""
