"""Real-time core: rooms, chat sequencing, presence, connections and the
Socket.IO server (its event edge is ``server.sockets``).

Services here take their collaborators in ``__init__`` and import neither
aiohttp nor pymongo; ``server.realtime.setup.build_realtime`` builds them."""
