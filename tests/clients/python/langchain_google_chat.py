"""LangChain, `ChatGoogleGenerativeAI(model=...)` as its docs show: key and
base URL come from the environment only. One call: a one-token chat."""
from langchain_google_genai import ChatGoogleGenerativeAI

chat = ChatGoogleGenerativeAI(model="gemini-2.5-flash", max_tokens=1, max_retries=0)
reply = chat.invoke("ping")
print(f"ok: {type(reply).__name__}")
