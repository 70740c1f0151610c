"""One-to-one calls: the state machine (:mod:`server.calls.service`),
signal checks (:mod:`server.calls.signals`), relay placement across nodes
(:mod:`server.calls.relay_link`) and ``build_calls`` (:mod:`server.calls.setup`)."""
