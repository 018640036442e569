"""Offline testing against a fake Gemini: the real google-genai client, a local server.

``FakeGemini`` speaks Gemini's REST protocol on 127.0.0.1, so a pipeline under test keeps
using ``genai.Client`` unmodified and only its ``base_url`` changes::

    from rca.testing import FakeGemini, Limits, Reply

    with FakeGemini(limits={"k1": Limits(rpm=3)}, window_s=1.0) as server:
        server.script([Reply.rate_limited(retry_delay=1.0), Reply.error(503)], key="k1")
        client = server.client("k1")   # genai.Client(api_key="k1", http_options=HttpOptions(base_url=server.url))
        ...
        assert server.stats("k1").rate_limited == 1
"""

from rca.testing._quota import Limits
from rca.testing._replies import Latency, Reply
from rca.testing._schema import enum_paths, synthesize, violate
from rca.testing._server import DEFAULT_MODELS, FakeGemini, RecordedRequest, Stats

__all__ = [
    "DEFAULT_MODELS", "FakeGemini", "Latency", "Limits", "RecordedRequest", "Reply", "Stats",
    "enum_paths", "synthesize", "violate",
]
