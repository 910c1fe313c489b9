"""Groq Python SDK, `Groq()` as its README shows: the key (GROQ_API_KEY) and
the API root (GROQ_BASE_URL, without /openai/v1) come from the environment
only. One cheap call: list the models."""
from groq import Groq

groq = Groq()
listed = groq.models.list()
print(f"ok: {len(listed.data)} Groq models")
