"""Fireworks AI Python SDK, `Fireworks()` as its README shows: the key
(FIREWORKS_API_KEY) and the API root (FIREWORKS_BASE_URL) come from the
environment only. With a base URL set, the SDK posts to <base>/v1/...
instead of https://api.fireworks.ai/inference/v1/.... One call: a one-token
chat completion."""
from fireworks import Fireworks

completion = Fireworks().chat.completions.create(
    model="accounts/fireworks/models/llama-v3p3-70b-instruct",
    messages=[{"role": "user", "content": "ping"}],
    max_tokens=1,
)
print(f"ok: finish reason {completion.choices[0].finish_reason}")
