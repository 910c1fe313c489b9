"""LangChain's `ChatDeepSeek()`: the key (DEEPSEEK_API_KEY) and base URL
(DEEPSEEK_API_BASE) come from the environment only. One call: a one-token
chat completion."""
from langchain_deepseek import ChatDeepSeek

chat = ChatDeepSeek(model="deepseek-v4-flash", max_tokens=1, max_retries=0)
message = chat.invoke("ping")
print(f"ok: {message.content!r}")
