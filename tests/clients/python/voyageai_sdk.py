"""Voyage AI Python SDK, `voyageai.Client()` as its docs show: the key comes
from the environment. voyageai reads no base URL from the environment, so
the manifest's note says to pass `base_url=`; the test hands that URL over
as the only argument. One call: embed one word."""
import sys

import voyageai

client = voyageai.Client(base_url=sys.argv[1])
result = client.embed(["ping"], model="voyage-3.5-lite")
print(f"ok: {len(result.embeddings)} embedding")
