"""The HTTP edge, one module per job (handlers import the one they need):

routes.py     ``Routes``: the route tables with their OpenAPI metadata
parsing.py    ``body()``, ``query()``, ``path_id()``: request -> pydantic model
responses.py  ``json_response()``
auth.py       ``authenticate()``, ``require_admin()``: the caller's claims
client.py     ``client_ip()``, ``client_info()``: who is asking, behind trusted proxies

Model validation itself (``parse_model``) is shared with the socket edge and
lives with the schemas (``server/schemas/parsing.py``)."""
