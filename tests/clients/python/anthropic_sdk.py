"""Anthropic Python SDK, `Anthropic()` as its README shows: key and base URL
come from the environment only. One call: a one-token message."""
from anthropic import Anthropic

client = Anthropic()
message = client.messages.create(
    model="claude-haiku-4-5",
    max_tokens=1,
    messages=[{"role": "user", "content": "ping"}],
)
print(f"ok: stop reason {message.stop_reason} from {client.base_url.host}")
