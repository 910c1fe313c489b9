"""OpenAI Python SDK, `AzureOpenAI()` as Microsoft's quickstart shows: key,
endpoint and API version come from the environment only. One call: a
one-token chat completion on a deployment named after the model."""
from openai import AzureOpenAI

client = AzureOpenAI()
reply = client.chat.completions.create(
    model="gpt-4o-mini",
    messages=[{"role": "user", "content": "ping"}],
    max_tokens=1,
)
print(f"ok: {len(reply.choices)} choice from {client.base_url.host}")
