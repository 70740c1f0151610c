"""AI-assisted matching: Gemini embeddings and match explanations, off the
request path and always optional (docs/marketplace.md)."""
