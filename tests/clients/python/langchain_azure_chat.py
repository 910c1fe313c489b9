"""LangChain, `AzureChatOpenAI(azure_deployment=...)` as its docs show: key,
endpoint and API version come from the environment only. One call: a
one-token chat."""
from langchain_openai import AzureChatOpenAI

chat = AzureChatOpenAI(azure_deployment="gpt-4o-mini", max_tokens=1, max_retries=0)
reply = chat.invoke("ping")
print(f"ok: {type(reply).__name__}")
