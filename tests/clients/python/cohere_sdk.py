"""Cohere Python SDK, `cohere.ClientV2()` as its README shows: the key
(CO_API_KEY) and the API root (CO_API_URL, without /v1 or /v2) come from
the environment only. One call: a v2 chat."""
import cohere

response = cohere.ClientV2().chat(
    model="command-a-03-2025",
    messages=[{"role": "user", "content": "ping"}],
)
print(f"ok: finish reason {response.finish_reason}")
