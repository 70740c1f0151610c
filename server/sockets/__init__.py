"""The Socket.IO event edge, like ``server/http/`` for REST:

events.py      ``SocketEvents`` tables (``@events.on("name", Model)``) and the
               ``SocketContext`` a handler gets
dispatcher.py  ``EventDispatcher``: rate limits, parses, calls the handler and
               turns every outcome into an ack

The sockets themselves (``SocketState``, ``SocketRegistry``) belong to the
real-time core (``server/realtime/socket_registry.py``)."""
