"""Real-time core: rooms, chat sequencing, presence and the Socket.IO edge.

Services here take their collaborators in ``__init__`` and import neither
aiohttp nor pymongo; ``server.realtime.setup`` wires them into the app."""
