"""OpenAI Python SDK, `OpenAI()` as its README shows: key and base URL come
from the environment only. One cheap call: list the models."""
from openai import OpenAI

client = OpenAI()
models = client.models.list()
print(f"ok: {len(models.data)} models from {client.base_url.host}")
