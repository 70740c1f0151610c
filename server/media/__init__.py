"""Server-side media: the WebRTC relay (:mod:`server.media.relay`, aiortc) and
ICE/TURN credentials (:mod:`server.media.turn`, no aiortc import).

Import the submodules directly; this package stays empty so that code which
only needs TURN credentials does not pay for importing aiortc.
"""
