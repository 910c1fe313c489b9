"""LangChain, `ChatAnthropic(model=...)` as its docs show: key and base URL
come from the environment only. One call: a one-token chat."""
from langchain_anthropic import ChatAnthropic

chat = ChatAnthropic(model="claude-haiku-4-5", max_tokens=1, max_retries=0)
reply = chat.invoke("ping")
print(f"ok: {type(reply).__name__}")
