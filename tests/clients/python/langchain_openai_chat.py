"""LangChain, `ChatOpenAI(model=...)` as its docs show: key and base URL
come from the environment only. One call: a one-token chat."""
from langchain_openai import ChatOpenAI

chat = ChatOpenAI(model="gpt-4o-mini", max_tokens=1, max_retries=0)
reply = chat.invoke("ping")
print(f"ok: {type(reply).__name__}")
