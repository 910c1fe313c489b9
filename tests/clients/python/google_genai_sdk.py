"""Google Gen AI Python SDK, `genai.Client()` as its README shows: key and
base URL come from the environment only. One call: generate content."""
from google import genai

client = genai.Client()
response = client.models.generate_content(model="gemini-2.5-flash", contents="ping")
print(f"ok: {len(response.candidates or [])} candidate")
